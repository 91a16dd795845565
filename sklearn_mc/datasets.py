"""Synthetic matrices, missingness masks and rating files (no downloads, ever)."""

from __future__ import annotations

import io

import numpy as np
from sklearn.utils import Bunch, check_random_state

from ._masks import make_mask

__all__ = ["load_ratings", "make_low_rank", "make_mask", "make_ratings"]


def make_low_rank(
    n_rows: int,
    n_cols: int,
    rank: int,
    *,
    noise: float = 0.0,
    random_state=None,
    return_factors: bool = False,
):
    """A random low-rank matrix ``X = U @ V.T`` with U, V ~ N(0, 1), as in the papers.

    Parameters
    ----------
    n_rows, n_cols : int
        Shape of ``X``.
    rank : int
        Inner dimension of the factors (the rank of ``X`` almost surely).
    noise : float, default=0.0
        Standard deviation of i.i.d. Gaussian noise added to every entry.
    random_state : int, RandomState instance or None, default=None
        Seed.
    return_factors : bool, default=False
        Also return ``U`` and ``V``.

    Returns
    -------
    X : ndarray of shape (n_rows, n_cols)
        Each entry has variance ``rank`` (plus ``noise**2``).
    U, V : ndarray
        The factors, only if ``return_factors``.

    Examples
    --------
    >>> from sklearn_mc.datasets import make_low_rank
    >>> X = make_low_rank(50, 40, 3, random_state=0)
    >>> X.shape, int(np.linalg.matrix_rank(X))
    ((50, 40), 3)
    """
    for name, value in (("n_rows", n_rows), ("n_cols", n_cols), ("rank", rank)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}.")
    rng = check_random_state(random_state)
    U = rng.standard_normal((n_rows, rank))
    V = rng.standard_normal((n_cols, rank))
    X = U @ V.T
    if noise:
        X = X + noise * rng.standard_normal(X.shape)
    return (X, U, V) if return_factors else X


# ------------------------------------------------------------------ ratings
#: the text formats :func:`load_ratings` reads, and their field separators.
_RATING_FORMATS = {
    "movielens-100k": "\t",
    "movielens-1m": "::",
    "csv": ",",
}


def make_ratings(
    n_users: int = 500,
    n_items: int = 300,
    rank: int = 5,
    *,
    density: float = 0.05,
    levels=(1, 2, 3, 4, 5),
    skew: float = 1.0,
    noise: float = 0.5,
    random_state=None,
    return_truth: bool = False,
    output: str = "dense",
):
    """A synthetic user-item rating matrix with popularity-skewed missingness.

    A rank-``rank`` signal ``U @ V.T`` (U, V ~ N(0, 1)) is standardised, mixed
    with Gaussian noise of relative size ``noise``, mapped onto the span of
    ``levels`` (mean at the middle of the scale, four standard deviations
    across it) and rounded to the nearest level, so a 1..5 scale gets the
    bell-shaped rating histogram of real data. Which entries are observed is
    skewed like real rating data: user ``i`` is active with weight
    ``(1 + r_i) ** -skew`` and item ``j`` popular with weight
    ``(1 + s_j) ** -skew`` (``r``, ``s`` random ranks, a Zipf law), and an
    entry is observed with probability proportional to the product, capped at
    1, scaled to hit ``density``. Every user and every item has at least one
    observed rating.

    Parameters
    ----------
    n_users, n_items : int, default=500, 300
        Shape of the matrix (rows are users, columns items).
    rank : int, default=5
        Rank of the signal before noise and quantisation.
    density : float in (0, 1], default=0.05
        Expected share of observed entries.
    levels : array-like of float, default=(1, 2, 3, 4, 5)
        The allowed rating values, strictly increasing, at least two.
    skew : float >= 0, default=1.0
        Zipf exponent of user activity and item popularity; 0 gives uniform
        missingness.
    noise : float >= 0, default=0.5
        Standard deviation of the noise relative to the signal's.
    random_state : int, RandomState instance or None, default=None
        Seed.
    return_truth : bool, default=False
        Also return the complete rating matrix (dense output only).
    output : {"dense", "sparse"}, default="dense"
        ``"dense"``: an ndarray with NaN where unobserved. ``"sparse"``: a
        :class:`scipy.sparse.csr_array` whose stored entries are the observed
        ratings (the package's sparse input rule), built without any
        ``n_users × n_items`` array: memory ``O(nnz + (n_users + n_items) ·
        rank)`` plus blocks of about 2²² candidate pairs, so MovieLens-10M
        shapes (70,000 × 10,000, 10⁷ ratings) take a few hundred MB. The
        distribution is the same as the dense one, the random draws are not
        (the same seed gives a different matrix).

    Returns
    -------
    X : ndarray or scipy.sparse.csr_array of shape (n_users, n_items)
        Ratings on ``levels``, NaN (dense) or not stored (sparse) where
        unobserved.
    X_full : ndarray of shape (n_users, n_items)
        Every user's rating of every item, only if ``return_truth``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mc.datasets import make_ratings
    >>> X, X_full = make_ratings(200, 100, density=0.1, random_state=0,
    ...                          return_truth=True)
    >>> X.shape, round(float(np.mean(~np.isnan(X))), 2)
    ((200, 100), 0.1)
    >>> sorted(np.unique(X_full).tolist())
    [1.0, 2.0, 3.0, 4.0, 5.0]
    """
    for name, value in (("n_users", n_users), ("n_items", n_items), ("rank", rank)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density!r}.")
    if skew < 0:
        raise ValueError(f"skew must be >= 0, got {skew!r}.")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}.")
    levels = _check_levels(levels)
    if output not in ("dense", "sparse"):
        raise ValueError(f"output must be 'dense' or 'sparse', got {output!r}.")
    rng = check_random_state(random_state)
    if output == "sparse":
        if return_truth:
            raise ValueError(
                "return_truth=True needs output='dense' (the full truth is an "
                "n_users x n_items array); hold out observed ratings instead."
            )
        return _make_sparse_ratings(
            n_users, n_items, rank, density, levels, skew, noise, rng
        )
    signal = rng.standard_normal((n_users, rank)) @ rng.standard_normal((rank, n_items))
    signal = (signal - signal.mean()) / max(signal.std(), 1e-12)
    value = (signal + noise * rng.standard_normal(signal.shape)) / np.hypot(1, noise)
    span = levels[-1] - levels[0]
    value = (levels[0] + levels[-1]) / 2 + value * span / 4
    # nearest level, for unevenly spaced levels too
    edges = (levels[1:] + levels[:-1]) / 2
    X_full = levels[np.searchsorted(edges, value)]

    activity = (1.0 + rng.permutation(n_users)) ** -skew
    popularity = (1.0 + rng.permutation(n_items)) ** -skew
    weight = np.outer(activity, popularity)
    prob = _scale_to_density(weight, density)
    observed = rng.random_sample(weight.shape) < prob
    # every user and item keeps at least one rating, so no row or column of
    # the matrix is empty
    empty_rows = np.flatnonzero(~observed.any(axis=1))
    observed[empty_rows, rng.randint(0, n_items, empty_rows.size)] = True
    empty_cols = np.flatnonzero(~observed.any(axis=0))
    observed[rng.randint(0, n_users, empty_cols.size), empty_cols] = True
    X = np.where(observed, X_full, np.nan)
    return (X, X_full) if return_truth else X


#: candidate (user, item) pairs drawn per block by the sparse make_ratings.
_SPARSE_BLOCK = 2**22


def _make_sparse_ratings(n_users, n_items, rank, density, levels, skew, noise, rng):
    """:func:`make_ratings` with ``output="sparse"``: same model, no dense array."""
    import scipy.sparse as sp

    n_users, n_items, rank = int(n_users), int(n_items), int(rank)
    U = rng.standard_normal((n_users, rank))
    V = rng.standard_normal((n_items, rank))
    # mean and std of U @ V.T over all n_users * n_items entries, exactly
    n_all = float(n_users) * n_items
    mean = float(U.sum(0) @ V.sum(0)) / n_all
    second = float(np.sum((U.T @ U) * (V.T @ V))) / n_all
    std = max(np.sqrt(max(second - mean**2, 0.0)), 1e-12)

    activity = (1.0 + rng.permutation(n_users)) ** -skew
    popularity = (1.0 + rng.permutation(n_items)) ** -skew
    scale = _sparse_density_scale(activity, popularity, density)
    rows, cols = [], []
    step = max(1, _SPARSE_BLOCK // n_items)
    for start in range(0, n_users, step):
        a = activity[start : start + step]
        prob = np.minimum(1.0, (scale * a)[:, None] * popularity[None, :])
        r, c = np.nonzero(rng.random_sample(prob.shape) < prob)
        rows.append(r + start)
        cols.append(c)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    # every user and item keeps at least one rating
    empty_rows = np.flatnonzero(np.bincount(rows, minlength=n_users) == 0)
    rows = np.concatenate([rows, empty_rows])
    cols = np.concatenate([cols, rng.randint(0, n_items, empty_rows.size)])
    empty_cols = np.flatnonzero(np.bincount(cols, minlength=n_items) == 0)
    rows = np.concatenate([rows, rng.randint(0, n_users, empty_cols.size)])
    cols = np.concatenate([cols, empty_cols])

    signal = (np.einsum("ij,ij->i", U[rows], V[cols]) - mean) / std
    value = (signal + noise * rng.standard_normal(rows.size)) / np.hypot(1, noise)
    span = levels[-1] - levels[0]
    value = (levels[0] + levels[-1]) / 2 + value * span / 4
    edges = (levels[1:] + levels[:-1]) / 2
    ratings = levels[np.searchsorted(edges, value)]
    return sp.csr_array((ratings, (rows, cols)), shape=(n_users, n_items))


def _sparse_density_scale(activity, popularity, density: float) -> float:
    """``c`` with mean of ``min(1, c * a_i * p_j)`` equal to ``density``.

    Evaluated without the outer product: with ``p`` sorted, each user's row
    sum is ``#{p_j >= 1 / (c a_i)} + c a_i · Σ_{p_j < 1/(c a_i)} p_j``.
    """
    p = np.sort(popularity)
    prefix = np.concatenate([[0.0], np.cumsum(p)])
    n_all = float(activity.size) * p.size

    def mean_prob(c):
        t = c * activity
        below = np.searchsorted(p, 1.0 / t, side="left")
        return float(np.sum((p.size - below) + t * prefix[below])) / n_all

    lo, hi = 0.0, density / (activity.mean() * p.mean())
    while mean_prob(hi) < density:
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = (lo + hi) / 2
        if mean_prob(mid) < density:
            lo = mid
        else:
            hi = mid
    return hi


def _scale_to_density(weight: np.ndarray, density: float) -> np.ndarray:
    """``min(1, c * weight)`` with ``c`` chosen so that its mean is ``density``."""
    lo, hi = 0.0, density / weight.mean()
    while np.minimum(1.0, hi * weight).mean() < density:
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.minimum(1.0, mid * weight).mean() < density:
            lo = mid
        else:
            hi = mid
    return np.minimum(1.0, hi * weight)


def _check_levels(levels) -> np.ndarray:
    """Validate a set of discrete values: finite, strictly increasing, >= 2.

    Parameters
    ----------
    levels : array-like of float
        Candidate levels.

    Returns
    -------
    levels : ndarray of float64
        The levels as a 1-D array.

    Raises
    ------
    ValueError
        With a message that says what is wrong.
    """
    try:
        arr = np.asarray(levels, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"levels must be numbers, got {levels!r}.") from exc
    if arr.ndim != 1:
        raise ValueError(f"levels must be a 1-D sequence, got shape {arr.shape}.")
    if arr.size < 2:
        raise ValueError(
            f"levels needs at least two values to quantise to, got {arr.tolist()}."
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"levels must be finite (no NaN or inf), got {arr.tolist()}.")
    if not (np.diff(arr) > 0).all():
        raise ValueError(
            "levels must be strictly increasing (sorted, no duplicates), got "
            f"{arr.tolist()}."
        )
    return arr


def load_ratings(path, format: str = "auto", *, output: str = "dense"):
    """Read a user-item-rating text file (MovieLens and CSV layouts).

    Each line holds ``user, item, rating`` and optionally a timestamp:

    ``"movielens-100k"``
        tab-separated ``user item rating timestamp`` (MovieLens ``u.data``);
    ``"movielens-1m"``
        ``user::item::rating::timestamp`` (MovieLens 1M / 10M ``ratings.dat``);
    ``"csv"``
        comma-separated, first three columns user, item, rating (further
        columns ignored, a fourth numeric one read as the timestamp), with an
        optional header line (MovieLens ``ratings.csv``);
    ``"auto"``
        picked from the first line: ``::``, then a tab, then a comma.

    Ids are mapped to matrix positions in sorted order: row ``i`` is user
    ``user_ids[i]`` and column ``j`` item ``item_ids[j]``; ids are kept as
    integers when every id is one, as strings otherwise. Only users and items
    that occur in the file get a row or column. When a (user, item) pair occurs
    more than once the last line wins.

    Parameters
    ----------
    path : str or path-like
        The file.
    format : {"auto", "movielens-100k", "movielens-1m", "csv"}, default="auto"
        Its layout.
    output : {"dense", "triplets"}, default="dense"
        ``"dense"`` also builds the NaN-for-missing matrix ``X`` (memory
        ``n_users * n_items``); ``"triplets"`` returns only the observed
        entries (memory proportional to the number of ratings).

    Returns
    -------
    data : sklearn.utils.Bunch
        ``rows``, ``cols`` (int arrays), ``ratings`` (float array): the
        observed entries; ``user_ids``, ``item_ids``: the raw id of each row
        and column; ``timestamps`` (int array or None); ``shape``; and ``X``
        (ndarray, NaN where unrated) when ``output="dense"``.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn_mc.datasets import load_ratings
    >>> path = os.path.join(tempfile.mkdtemp(), "u.data")
    >>> with open(path, "w") as f:
    ...     _ = f.write("196\\t242\\t3\\t881250949\\n186\\t302\\t3\\t891717742\\n"
    ...                 "196\\t302\\t5\\t881251000\\n")
    >>> data = load_ratings(path)
    >>> data.X
    array([[nan,  3.],
           [ 3.,  5.]])
    >>> data.user_ids.tolist(), data.item_ids.tolist()
    ([186, 196], [242, 302])
    """
    import pandas as pd

    if output not in ("dense", "triplets"):
        raise ValueError(f"output must be 'dense' or 'triplets', got {output!r}.")
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    first = next((line for line in text.splitlines() if line.strip()), "")
    if format == "auto":
        if "::" in first:
            format = "movielens-1m"
        elif "\t" in first:
            format = "movielens-100k"
        elif "," in first:
            format = "csv"
        else:
            raise ValueError(
                f"cannot tell the format of {str(path)!r} from its first line "
                f"{first[:80]!r}; pass format='movielens-100k', 'movielens-1m' "
                "or 'csv'."
            )
    if format not in _RATING_FORMATS:
        raise ValueError(
            "format must be 'auto', 'movielens-100k', 'movielens-1m' or 'csv', "
            f"got {format!r}."
        )
    sep = _RATING_FORMATS[format]
    if sep == "::":
        # pandas' C parser takes one-character separators only
        text, sep = text.replace("::", "\t"), "\t"
    fields = first.replace("::", "\t").split(sep)
    header = len(fields) >= 3 and not _is_number(fields[2])
    frame = pd.read_csv(
        io.StringIO(text),
        sep=sep,
        header=None,
        skiprows=1 if header else 0,
        dtype=str,
        skip_blank_lines=True,
        skipinitialspace=True,
    )
    if frame.shape[1] < 3:
        raise ValueError(
            f"{str(path)!r} has {frame.shape[1]} column(s) as {format!r}; a rating "
            "file needs at least user, item and rating."
        )
    try:
        ratings = frame[2].astype(np.float64).to_numpy()
    except ValueError as exc:
        raise ValueError(f"{str(path)!r}: non-numeric rating ({exc}).") from exc
    if not np.isfinite(ratings).all():
        raise ValueError(f"{str(path)!r} contains missing or non-finite ratings.")
    timestamps = None
    if frame.shape[1] >= 4:
        try:
            timestamps = frame[3].astype(np.int64).to_numpy()
        except (ValueError, TypeError):
            timestamps = None
    user_ids, rows = np.unique(_as_ids(frame[0]), return_inverse=True)
    item_ids, cols = np.unique(_as_ids(frame[1]), return_inverse=True)
    shape = (user_ids.size, item_ids.size)
    # last occurrence of each (user, item) pair wins
    flat = rows.astype(np.int64) * shape[1] + cols
    _, last_rev = np.unique(flat[::-1], return_index=True)
    keep = np.sort(flat.size - 1 - last_rev)
    rows, cols, ratings = rows[keep], cols[keep], ratings[keep]
    if timestamps is not None:
        timestamps = timestamps[keep]
    data = Bunch(
        rows=rows.astype(np.intp),
        cols=cols.astype(np.intp),
        ratings=ratings,
        user_ids=user_ids,
        item_ids=item_ids,
        timestamps=timestamps,
        shape=shape,
    )
    if output == "dense":
        X = np.full(shape, np.nan)
        X[data.rows, data.cols] = ratings
        data.X = X
    return data


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_ids(column) -> np.ndarray:
    """Integer ids when every id is an integer, the stripped strings otherwise."""
    values = column.astype(str).str.strip().to_numpy()
    try:
        return values.astype(np.int64)
    except ValueError:
        return values.astype(str)
