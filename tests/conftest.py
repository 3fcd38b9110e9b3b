"""pytester (for the clustersim pytest plugin test)."""

pytest_plugins = ["pytester"]
