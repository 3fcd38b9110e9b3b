"""`python -m simulator` is the same as the `clustersim` command."""

import sys

from simulator.cli.entry import main

sys.exit(main())
