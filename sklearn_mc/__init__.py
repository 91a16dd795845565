"""sklearn_mc: matrix-completion imputers for scikit-learn, powered by PyTorch.

The imputer classes are imported on first use (PEP 562 module ``__getattr__``):
``import sklearn_mc`` itself does not import torch or scikit-learn, so that the
``sklearn-mc`` command answers ``--help`` at once. ``from sklearn_mc import
SVDImputer`` and ``sklearn_mc.SVDImputer`` work as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: exported name -> the module that defines it (relative to this package).
_LAZY_ATTRS: dict[str, str] = {
    "AIRNetImputer": "._air_net",
    "ChainedImputer": "._chained",
    "DMFImputer": "._dmf",
    "DeepMFImputer": "._deep_mf",
    "DivergenceError": "._optim",
    "KNNImputer": "._knn",
    "MLPImputer": "._mlp",
    "SGDMFImputer": "._sgd_mf",
    "SVDImputer": "._svd",
}
#: public submodules, importable as attributes (``sklearn_mc.datasets``).
_SUBMODULES = frozenset({"cli", "datasets", "metrics", "model_selection", "ratings"})

__all__ = [
    "AIRNetImputer",
    "ChainedImputer",
    "DMFImputer",
    "DeepMFImputer",
    "DivergenceError",
    "KNNImputer",
    "MLPImputer",
    "SGDMFImputer",
    "SVDImputer",
    "__version__",
]


def __getattr__(name: str):
    if name in _LAZY_ATTRS:
        value = getattr(importlib.import_module(_LAZY_ATTRS[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from ._air_net import AIRNetImputer
    from ._chained import ChainedImputer
    from ._deep_mf import DeepMFImputer
    from ._dmf import DMFImputer
    from ._knn import KNNImputer
    from ._mlp import MLPImputer
    from ._optim import DivergenceError
    from ._sgd_mf import SGDMFImputer
    from ._svd import SVDImputer
