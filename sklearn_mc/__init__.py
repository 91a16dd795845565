"""sklearn_mc: matrix-completion imputers for scikit-learn, powered by PyTorch."""

__version__ = "0.1.0"

__all__ = ["__version__"]
