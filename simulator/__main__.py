"""`python -m simulator` is the same as the `clustersim` command."""

import sys

from simulator.cli.main import main

sys.exit(main())
