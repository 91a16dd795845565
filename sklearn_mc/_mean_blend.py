"""Shrinkage of a model's completion toward the column means.

A model that does not predict a column better than its observed mean (on
held-out observed entries) should not be used for that column: column ``j``
is completed as ``mean_j + w_j (model_j - mean_j)``, with ``w_j`` in
``[0, 1]`` chosen by least squares on the held-out entries. This is the
package's guard that no imputer is worse than mean imputation, shared by the
imputers that have held-out entries (KNN's re-hidden entries, the held-out
split of the gradient-trained factorisations).
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import warn_user

#: the least-squares weight is averaged with 1 as if this many more held-out
#: entries had it at 1: a column with few held-out entries keeps the model.
PRIOR_ENTRIES = 10.0

#: ``_parameter_constraints`` entry of the imputers' ``mean_shrinkage``
MEAN_SHRINKAGE_CONSTRAINT = [
    StrOptions({"auto"}),
    Interval(numbers.Real, 0, 1, closed="both"),
    "boolean",
    None,
]


def shrinkage_rule(mean_shrinkage) -> str | float | None:
    """What a ``mean_shrinkage`` parameter asks for.

    Returns ``"auto"`` (``"auto"`` or True: weights fitted on held-out
    entries), None (None, False or 0: the model's output as is) or the fixed
    weight ``1 - s`` of a float ``s``.
    """
    if mean_shrinkage is True or (
        isinstance(mean_shrinkage, str) and mean_shrinkage == "auto"
    ):
        return "auto"
    if mean_shrinkage is None or mean_shrinkage is False or mean_shrinkage == 0:
        return None
    return 1.0 - float(mean_shrinkage)


def store_blend_weights(est, weights) -> None:
    """``est.blend_weights_``: ``weights`` over the valid columns (1 where
    None), NaN for the columns empty at fit."""
    est.blend_weights_ = np.full(est.n_features_in_, np.nan)
    est.blend_weights_[est._valid_mask] = 1.0 if weights is None else weights


def blend_weights(a, b, cols, n_features: int, prior_entries: float = PRIOR_ENTRIES):
    """Per column, the weight ``w`` minimising ``Σ (b - w a)²``, regularised.

    Parameters
    ----------
    a : ndarray of shape (n_entries,)
        The model's prediction minus the column mean, at held-out entries.
    b : ndarray of shape (n_entries,)
        The held-out truth minus the column mean.
    cols : ndarray of shape (n_entries,)
        Column of each entry.
    n_features : int
        Number of columns.
    prior_entries : float, default=PRIOR_ENTRIES
        The least-squares ``Σab / Σa²`` over a column's ``N`` entries is
        averaged with 1 as if ``prior_entries`` more entries had it at 1.

    Returns
    -------
    w : ndarray of shape (n_features,)
        In ``[0, 1]``; 1 for a column with no entry, or with ``a = 0``
        throughout.
    """
    n = np.bincount(cols, minlength=n_features).astype(float)
    ab = np.bincount(cols, a * b, minlength=n_features)
    aa = np.bincount(cols, a * a, minlength=n_features)
    ok = aa > 0
    w = np.ones(n_features)
    w_ls = ab[ok] / aa[ok]
    w[ok] = (n[ok] * w_ls + prior_entries) / (n[ok] + prior_entries)
    return np.clip(w, 0.0, 1.0)


def shrink_missing(out: np.ndarray, mask: np.ndarray, w, mean) -> None:
    """``mean + w (out - mean)`` at the missing entries of ``out``, in place.

    Works in blocks of rows (1 MiB temporaries), so the memory does not grow
    with the table.
    """
    if np.all(w == 1.0):
        return
    step = max(1, 2**17 // max(1, out.shape[1]))
    for start in range(0, out.shape[0], step):
        block = out[start : start + step]
        blended = block - mean
        blended *= w
        blended += mean
        np.copyto(block, blended, where=~mask[start : start + step])


def warn_shrunk_to_mean(est, w, columns, what: str, hint: str) -> None:
    """Warn, naming them, about the columns with ``w = 0`` (imputed by the mean).

    ``columns`` are the input-column indices of ``w``'s entries (the columns
    kept at fit), ``what`` names the model's prediction in the message and
    ``hint`` says how to switch the shrinkage off.
    """
    zero = np.asarray(columns)[np.asarray(w) == 0]
    if not zero.size:
        return
    names = getattr(est, "feature_names_in_", None)
    names = [str(names[j]) if names is not None else f"x{j}" for j in zero]
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    warn_user(
        f"{type(est).__name__}: on held-out observed entries {what} did not "
        f"beat the column mean in {len(names)} column(s) ({shown}); they are "
        f"imputed with their observed mean (blend_weights_ = 0). {hint}"
    )
