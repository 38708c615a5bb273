"""Package version (single source of truth for the build)."""

__version__ = "0.1.0"
