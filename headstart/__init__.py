"""headstart: create, store, share, re-train and benchmark Keras image classifiers from Jupyter."""

__version__ = "0.1.0"
__all__ = ["__version__"]
