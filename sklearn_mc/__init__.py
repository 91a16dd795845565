"""sklearn_mc: matrix-completion imputers for scikit-learn, powered by PyTorch."""

from ._air_net import AIRNetImputer
from ._deep_mf import DeepMFImputer
from ._dmf import DMFImputer
from ._knn import KNNImputer
from ._mlp import MLPImputer
from ._sgd_mf import SGDMFImputer
from ._svd import SVDImputer

__version__ = "0.1.0"

__all__ = [
    "AIRNetImputer",
    "DMFImputer",
    "DeepMFImputer",
    "KNNImputer",
    "MLPImputer",
    "SGDMFImputer",
    "SVDImputer",
    "__version__",
]
