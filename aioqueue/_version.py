"""The one place the package version is written; the build reads it from here (pyproject: dynamic)."""

__version__ = "0.1.0"
