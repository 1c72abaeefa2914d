"""campaign: retention marketing that runs itself."""

__version__ = "0.1.0"
