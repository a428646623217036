"""GPUSRV tools: from a TCN-VAE checkpoint to verified, signed release artifacts.

Every command is a plain function returning a JSON-serialisable dict and raising
a :class:`model_tools.errors.ModelToolsError` subclass on failure; the CLI
(``python -m model_tools``) is a thin layer over them.
"""

__version__ = "0.1.0"
