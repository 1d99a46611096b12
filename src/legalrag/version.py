"""The package version, in a module of its own so that any stage can stamp it (the index
manifest does) without importing the package root, which re-exports the whole API."""

__version__ = "0.1.0"
