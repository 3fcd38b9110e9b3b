"""clustersim: discrete-event simulator of LLM training on GPU clusters."""

__version__ = "0.2.0.dev0"
