"""Hiding observed entries: the train / held-out split of matrix completion."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["hide_entries", "split_indices"]


def split_indices(n: int, fraction: float, random_state=None):
    """Split ``range(n)`` into a kept part and a held-out ``fraction``.

    At least one index is held out when ``fraction > 0`` and ``n >= 2``, and at
    least one is kept.

    Parameters
    ----------
    n : int
        Number of items.
    fraction : float in [0, 1)
        Share to hold out.
    random_state : int, RandomState instance or None, default=None
        Seed of the draw.

    Returns
    -------
    kept, held_out : ndarray of int
        Sorted index arrays.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}.")
    rng = check_random_state(random_state)
    n_out = int(round(fraction * n))
    if fraction > 0 and n >= 2:
        n_out = min(max(n_out, 1), n - 1)
    else:
        n_out = 0
    perm = rng.permutation(n)
    return np.sort(perm[n_out:]), np.sort(perm[:n_out])


def hide_entries(X, fraction: float = 0.2, random_state=None):
    """Hide a random ``fraction`` of the observed entries of ``X``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Data with NaN marking missing entries.
    fraction : float in [0, 1), default=0.2
        Share of the observed (non-NaN) entries to hide.
    random_state : int, RandomState instance or None, default=None
        Seed of the draw.

    Returns
    -------
    X_train : ndarray of shape (n_samples, n_features)
        A copy of ``X`` with the hidden entries set to NaN.
    hidden : ndarray of bool, shape (n_samples, n_features)
        True where an entry was hidden.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mc.model_selection import hide_entries
    >>> X = np.arange(12.0).reshape(3, 4)
    >>> X_train, hidden = hide_entries(X, fraction=0.25, random_state=0)
    >>> int(hidden.sum()), int(np.isnan(X_train).sum())
    (3, 3)
    """
    X_train = np.array(X, dtype=np.float64, copy=True)
    observed = np.flatnonzero(~np.isnan(X_train))
    _, out = split_indices(observed.size, fraction, random_state)
    hidden = np.zeros(X_train.shape, dtype=bool)
    hidden.flat[observed[out]] = True
    X_train[hidden] = np.nan
    return X_train, hidden
