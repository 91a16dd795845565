"""Errors of a completion, measured on a chosen set of entries.

Every function takes the ground truth ``X_true``, the completion ``X_pred``
and an optional boolean ``mask`` of the entries to score (typically the ones
the imputer never saw); without a mask every entry counts.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mae", "nmae", "relative_error", "rmse"]


def _pair(X_true, X_pred, mask):
    X_true = np.asarray(X_true, dtype=np.float64)
    X_pred = np.asarray(X_pred, dtype=np.float64)
    if X_true.shape != X_pred.shape:
        raise ValueError(
            f"X_true has shape {X_true.shape} but X_pred has shape {X_pred.shape}."
        )
    if mask is None:
        return X_true.ravel(), X_pred.ravel()
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != X_true.shape:
        raise ValueError(f"mask has shape {mask.shape}, expected {X_true.shape}.")
    if not mask.any():
        raise ValueError("mask selects no entries to score.")
    return X_true[mask], X_pred[mask]


def rmse(X_true, X_pred, mask=None) -> float:
    """Root mean squared error over the selected entries.

    Parameters
    ----------
    X_true, X_pred : array-like of shape (n_samples, n_features)
        Ground truth and completion.
    mask : array-like of bool or None, default=None
        Entries to score; all when None.

    Returns
    -------
    float

    Examples
    --------
    >>> from sklearn_mc.metrics import rmse
    >>> rmse([[1.0, 2.0]], [[1.0, 4.0]])
    1.414...
    """
    t, p = _pair(X_true, X_pred, mask)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(X_true, X_pred, mask=None) -> float:
    """Mean absolute error over the selected entries (see :func:`rmse`)."""
    t, p = _pair(X_true, X_pred, mask)
    return float(np.mean(np.abs(t - p)))


def nmae(X_true, X_pred, mask=None) -> float:
    """Normalised MAE of the AIR-Net paper: MAE / (max - min of ``X_true``).

    The range is taken over the whole ground truth, not only the scored
    entries, as in the paper.
    """
    X_true = np.asarray(X_true, dtype=np.float64)
    spread = float(np.max(X_true) - np.min(X_true))
    if spread == 0:
        raise ValueError("X_true is constant: NMAE is undefined.")
    return mae(X_true, X_pred, mask) / spread


def relative_error(X_true, X_pred, mask=None) -> float:
    """``||X_pred - X_true||_F / ||X_true||_F`` over the selected entries."""
    t, p = _pair(X_true, X_pred, mask)
    norm = float(np.linalg.norm(t))
    if norm == 0:
        raise ValueError("X_true is zero on the selected entries.")
    return float(np.linalg.norm(p - t)) / norm
