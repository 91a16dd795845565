"""The intermediate base of the gradient-trained imputers, and their shared docs.

scikit-learn's pattern (``sklearn/impute/_base.py`` ``_BaseImputer``,
``sklearn/decomposition/_nmf.py`` ``_BaseNMF``): the parameters every
gradient-trained method has are declared once, in
:class:`GradientTrainedImputer`, whose ``_parameter_constraints`` each
subclass merges (``**GradientTrainedImputer._parameter_constraints``) so that
the bounds cannot drift, and whose ``__init__`` each subclass calls with
``super().__init__(...)`` after listing every parameter explicitly in its own
signature (scikit-learn's convention: no ``**kwargs``).

The numpydoc descriptions of those parameters (and of the base class's) are
written once too, in :data:`PARAMETER_DOCS`; a class docstring names them by
a placeholder line ``{name}`` in its Parameters section, which
:func:`fill_parameter_docs` replaces by the entry, with the default read from
the class's own ``__init__`` signature (so the documented default is the real
one). Indented lines right after a placeholder are kept as the class's own
additions to that entry.
"""

from __future__ import annotations

import inspect
import numbers
import re
import textwrap

import numpy as np
from sklearn.utils._param_validation import Interval

from ._base import BaseMatrixImputer

__all__ = [
    "BATCH_SIZE_CONSTRAINT",
    "PARAMETER_DOCS",
    "GradientTrainedImputer",
    "fill_parameter_docs",
]

#: ``batch_size`` of the methods that take one (all but AIR-Net): items per
#: optimiser step, None for full batch.
BATCH_SIZE_CONSTRAINT = [Interval(numbers.Integral, 1, None, closed="left"), None]


class GradientTrainedImputer(BaseMatrixImputer):
    """Shared parameters of the imputers fitted by the training loop.

    Not an estimator by itself: subclasses implement ``_fit`` / ``_transform``
    (see :class:`~sklearn_mc._base.BaseMatrixImputer`), declare their own
    parameters in ``__init__`` and pass the shared ones to
    ``super().__init__``.
    """

    _parameter_constraints: dict = {
        **BaseMatrixImputer._parameter_constraints,
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        learning_rate,
        max_iter,
        tol,
        early_stopping,
        validation_fraction,
        n_iter_no_change,
        missing_values,
        keep_empty_features,
        add_indicator,
        min_value,
        max_value,
        device,
        random_state,
        verbose,
    ):
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        # BaseMatrixImputer's parameters (it has no __init__ of its own yet).
        self.missing_values = missing_values
        self.keep_empty_features = keep_empty_features
        self.add_indicator = add_indicator
        self.min_value = min_value
        self.max_value = max_value
        self.device = device
        self.random_state = random_state
        self.verbose = verbose


#: numpydoc entries: ``(type, description)``; the default comes from the
#: class's ``__init__``.
PARAMETER_DOCS: dict[str, tuple[str, str]] = {
    "learning_rate": (
        "float",
        "Initial step size of the optimiser; the training loop halves it "
        "each time the loss diverges and goes back to the last good state.",
    ),
    "batch_size": (
        "int or None",
        "Training items per optimiser step; None (or a size of at least the "
        "number of items) is full batch, one step per epoch.",
    ),
    "max_iter": (
        "int",
        "Maximum number of epochs (passes over the training items; an "
        "iteration, one step, in full batch). A fit that stops there with "
        "``tol > 0`` warns with a "
        ":class:`~sklearn.exceptions.ConvergenceWarning`.",
    ),
    "tol": (
        "float",
        "Relative improvement of the monitored loss that counts as progress "
        "(the held-out error with early stopping, the training loss "
        "without); with 0 only a loss that stops falling ends training "
        "before ``max_iter``.",
    ),
    "early_stopping": (
        "bool",
        "Hold out ``validation_fraction`` of the observed entries, stop when "
        "their error has not improved by ``tol`` for ``n_iter_no_change`` "
        "checks and keep the parameters of the best check.",
    ),
    "validation_fraction": (
        "float in (0, 1)",
        "Share of the observed entries held out for early stopping.",
    ),
    "n_iter_no_change": (
        "int",
        "Checks of the monitored loss without progress (see ``tol``) before "
        "training stops.",
    ),
    "missing_values": (
        "int, float or None",
        "Marker of the missing entries.",
    ),
    "keep_empty_features": (
        "bool",
        "Keep all-missing columns in the output (filled with 0) instead of "
        "dropping them, like scikit-learn's imputers.",
    ),
    "add_indicator": (
        "bool",
        "Append a :class:`~sklearn.impute.MissingIndicator` block (a 0/1 "
        "column for each column with missing entries at fit), as "
        "scikit-learn's imputers do; its names are in "
        "``get_feature_names_out()``.",
    ),
    "min_value": (
        "float or array-like of shape (n_features,)",
        "Lower bound of the imputed values (observed entries are never "
        "changed); an array gives one bound per column, as in "
        ":class:`~sklearn.impute.IterativeImputer`.",
    ),
    "max_value": (
        "float or array-like of shape (n_features,)",
        "Upper bound of the imputed values.",
    ),
    "device": (
        "str or torch.device",
        'Torch device: "auto" (CUDA, then MPS, then the CPU), "cpu", '
        '"cuda", "cuda:N" or "mps".',
    ),
    "random_state": (
        "int, RandomState instance or None",
        "Seed of every random draw of the fit (initialisation, held-out "
        "split, shuffles); an int makes a fit reproducible on the CPU.",
    ),
    "verbose": (
        "int",
        "Show a progress bar over the epochs with the losses, and a one-line "
        "summary at the end.",
    ),
}

_PLACEHOLDER = re.compile(r"^(?P<indent>[ ]*)\{(?P<name>\w+)\}[ ]*$", re.MULTILINE)


def _format_default(value) -> str:
    if isinstance(value, float):
        if np.isnan(value):
            return "np.nan"
        if np.isinf(value):
            return "np.inf" if value > 0 else "-np.inf"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def fill_parameter_docs(cls: type) -> type:
    """Class decorator: replace the ``{name}`` placeholder lines of the
    docstring by the shared entries of :data:`PARAMETER_DOCS`.

    The default is read from ``cls.__init__``; a placeholder naming no shared
    entry, or no parameter of ``cls``, raises at import time (so a docstring
    cannot silently lose an entry).
    """
    signature = inspect.signature(cls.__init__)

    def entry(match: re.Match) -> str:
        name, indent = match["name"], match["indent"]
        if name not in PARAMETER_DOCS or name not in signature.parameters:
            raise KeyError(f"{cls.__name__}: no shared entry for parameter {name!r}")
        kind, text = PARAMETER_DOCS[name]
        default = _format_default(signature.parameters[name].default)
        body = textwrap.fill(
            text,
            width=79,
            initial_indent=indent + "    ",
            subsequent_indent=indent + "    ",
            break_on_hyphens=False,
        )
        return f"{indent}{name} : {kind}, default={default}\n{body}"

    cls.__doc__ = _PLACEHOLDER.sub(entry, cls.__doc__)
    return cls
