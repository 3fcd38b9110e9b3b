"""clustersim: discrete-event simulator of LLM training on GPU clusters."""

from pathlib import Path

__version__ = "0.1.0"

# Shipped topologies/ and scenarios/ sit beside the package in the source tree
# (the project is installed editable: `pip install -e .`).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY_DIR = PROJECT_ROOT / "topologies"
SCENARIO_DIR = PROJECT_ROOT / "scenarios"
