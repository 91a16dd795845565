"""Rating data: long (user, item, rating) tables, sparse matrices, top-k lists.

The imputers that accept :mod:`scipy.sparse` input read it by the recommender
convention: **stored entries are observed ratings (an explicitly stored 0 is
a rating of 0) and absent entries are unknown**. scikit-learn's own imputers
read the implicit zeros of a sparse matrix as zeros instead; this module's
helpers build matrices for the first reading.

- :func:`ratings_to_matrix` turns a long table (a pandas DataFrame or three
  arrays, with arbitrary user and item ids) into a sparse matrix plus the
  id <-> index maps, and :func:`matrix_to_ratings` goes back.
- :func:`recommend` lists each user's top-``k`` items from a fitted imputer
  without ever building the dense completion.
- :func:`sparse_to_dense` is the explicit densification (NaN where unrated)
  for the imputers that need dense input.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from . import _sparse_path
from ._observed import ObservedEntries

__all__ = [
    "matrix_to_ratings",
    "ratings_to_matrix",
    "recommend",
    "set_dense_limit",
    "sparse_to_dense",
]


def _column(data, name, position: int, label: str) -> np.ndarray:
    if name is None:
        return data.iloc[:, position].to_numpy()
    if name not in data.columns:
        raise ValueError(
            f"{label} column {name!r} is not in the DataFrame (columns: "
            f"{list(data.columns)})."
        )
    return data[name].to_numpy()


def _check_ids(ids: np.ndarray, label: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"{label} must be 1-D, got shape {ids.shape}.")
    if ids.dtype.kind == "f" and np.isnan(ids).any():
        raise ValueError(f"{label} contain NaN: every rating needs a {label[:-1]}.")
    if ids.dtype.kind == "O":
        missing = np.array(
            [v is None or (isinstance(v, float) and v != v) for v in ids]
        )
        if missing.any():
            raise ValueError(
                f"{label} contain missing values (None/NaN) at position "
                f"{int(np.flatnonzero(missing)[0])}: every rating needs a "
                f"{label[:-1]}."
            )
    return ids


def _as_indices(ids: np.ndarray, label: str, size: int | None) -> tuple:
    if ids.size and ids.dtype.kind not in "iu":
        if ids.dtype.kind == "f" and np.array_equal(ids, np.round(ids)):
            ids = ids.astype(np.int64)
        else:
            raise TypeError(
                f"{label} must be integers when used as indices (encode=False), "
                f"got dtype {ids.dtype}."
            )
    ids = ids.astype(np.int64, copy=False)
    if ids.size and ids.min() < 0:
        k = int(np.flatnonzero(ids < 0)[0])
        raise ValueError(
            f"{label} hold the negative index {int(ids[k])} (at position {k}); "
            "with encode=False ids are row/column indices and must be >= 0. "
            "Use encode=True to map arbitrary ids to indices."
        )
    n = int(ids.max()) + 1 if ids.size else 0
    if size is not None:
        if ids.size and n > size:
            raise ValueError(f"{label} hold index {n - 1}, outside the shape ({size}).")
        n = size
    return ids, np.arange(n)


def ratings_to_matrix(
    data=None,
    *,
    users=None,
    items=None,
    ratings=None,
    user_col=None,
    item_col=None,
    rating_col=None,
    encode: bool = True,
    shape: tuple[int, int] | None = None,
    duplicates: str = "raise",
):
    """Turn a long (user, item, rating) table into a sparse rating matrix.

    Rows of the matrix are users and columns items; every rating becomes one
    stored entry (so an explicit rating of 0 is kept as a stored 0), absent
    pairs are unknown.

    Parameters
    ----------
    data : pandas.DataFrame or None, default=None
        The table. Without ``user_col``, ``item_col``, ``rating_col`` its first
        three columns are user, item and rating.
    users, items, ratings : array-like of shape (n_ratings,) or None
        The three columns as arrays (instead of ``data``).
    user_col, item_col, rating_col : str or None, default=None
        Column names in ``data``.
    encode : bool, default=True
        Map arbitrary ids (strings, sparse integers, ...) to consecutive
        indices, rows and columns ordered by sorted id. With False, the ids
        must be non-negative integers and are used as the indices themselves.
    shape : tuple of int or None, default=None
        ``(n_users, n_items)`` with ``encode=False`` (default: largest index
        + 1).
    duplicates : {"raise", "mean"}, default="raise"
        What to do with a (user, item) pair rated more than once: raise a
        ValueError, or keep the mean of its ratings.

    Returns
    -------
    matrix : scipy.sparse.csr_array of shape (n_users, n_items)
        The ratings, float64.
    user_ids : ndarray of shape (n_users,)
        ``user_ids[i]`` is the id of row ``i``.
    item_ids : ndarray of shape (n_items,)
        ``item_ids[j]`` is the id of column ``j``.

    Raises
    ------
    ValueError
        On NaN or infinite ratings, missing ids, negative indices with
        ``encode=False``, duplicate pairs with ``duplicates="raise"``, or
        columns of different lengths.

    Examples
    --------
    >>> from sklearn_mc.ratings import ratings_to_matrix
    >>> S, users, items = ratings_to_matrix(
    ...     users=["ann", "bob", "ann"], items=[10, 10, 30], ratings=[4, 5, 0])
    >>> S.toarray()
    array([[4., 0.],
           [5., 0.]])
    >>> users.tolist(), items.tolist(), S.nnz
    (['ann', 'bob'], [10, 30], 3)
    """
    if duplicates not in ("raise", "mean"):
        raise ValueError(f"duplicates must be 'raise' or 'mean', got {duplicates!r}.")
    if data is not None:
        if users is not None or items is not None or ratings is not None:
            raise ValueError("Pass either data or users/items/ratings, not both.")
        if not hasattr(data, "columns"):
            raise TypeError(
                f"data must be a pandas DataFrame, got {type(data).__name__}; "
                "pass arrays as users=, items=, ratings= instead."
            )
        if data.shape[1] < 3 and None in (user_col, item_col, rating_col):
            raise ValueError("data needs user, item and rating columns.")
        users = _column(data, user_col, 0, "user")
        items = _column(data, item_col, 1, "item")
        ratings = _column(data, rating_col, 2, "rating")
    elif users is None or items is None or ratings is None:
        raise ValueError("Pass data, or all three of users, items and ratings.")
    users = _check_ids(np.asarray(users), "users")
    items = _check_ids(np.asarray(items), "items")
    try:
        values = np.asarray(ratings, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ratings must be numbers ({exc}).") from exc
    if not (users.shape == items.shape == values.shape) or values.ndim != 1:
        raise ValueError(
            "users, items and ratings must be 1-D of the same length, got "
            f"{users.shape}, {items.shape}, {values.shape}."
        )
    bad = ~np.isfinite(values)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"ratings contain {int(bad.sum())} NaN or infinite value(s) (first at "
            f"position {k}, user {users[k]!r}, item {items[k]!r}); drop unrated "
            "pairs from the table instead of giving them a NaN rating."
        )
    if encode:
        user_ids, rows = np.unique(users, return_inverse=True)
        item_ids, cols = np.unique(items, return_inverse=True)
        n_shape = (user_ids.size, item_ids.size)
    else:
        n_users, n_items = (None, None) if shape is None else shape
        rows, user_ids = _as_indices(users, "users", n_users)
        cols, item_ids = _as_indices(items, "items", n_items)
        n_shape = (user_ids.size, item_ids.size)
    rows = rows.astype(np.int64).ravel()
    cols = cols.astype(np.int64).ravel()
    if duplicates == "mean":
        keys = rows * n_shape[1] + cols
        uniq, inverse = np.unique(keys, return_inverse=True)
        counts = np.bincount(inverse)
        values = np.bincount(inverse, weights=values) / counts
        rows, cols = uniq // n_shape[1], uniq % n_shape[1]
    try:
        entries = ObservedEntries.from_coo(
            rows, cols, values, n_shape, what="the rating table"
        )
    except ValueError as exc:
        if "duplicate" in str(exc):
            raise ValueError(
                str(exc).replace("(row, column)", "(user, item)")
                + " Or pass duplicates='mean'."
            ) from None
        raise
    return entries.to_csr(), user_ids, item_ids


def matrix_to_ratings(matrix, user_ids=None, item_ids=None, *, as_frame: bool = True):
    """The long (user, item, rating) table of a sparse rating matrix.

    The inverse of :func:`ratings_to_matrix`: one row per stored entry
    (explicit zeros included), ordered by user index then item index.

    Parameters
    ----------
    matrix : scipy.sparse matrix or array, or ndarray with NaN where unrated
        The ratings.
    user_ids, item_ids : array-like or None, default=None
        Ids of the rows and columns (default: the indices).
    as_frame : bool, default=True
        Return a pandas DataFrame with columns ``user``, ``item``,
        ``rating``; with False, the three arrays.

    Returns
    -------
    table : pandas.DataFrame or tuple of ndarray
        ``(users, items, ratings)``.

    Examples
    --------
    >>> from sklearn_mc.ratings import matrix_to_ratings, ratings_to_matrix
    >>> S, u, i = ratings_to_matrix(users=["b", "a"], items=["x", "y"],
    ...                             ratings=[3.0, 1.0])
    >>> matrix_to_ratings(S, u, i)
      user item  rating
    0    a    y     1.0
    1    b    x     3.0
    """
    if sp.issparse(matrix):
        entries = ObservedEntries.from_sparse(matrix)
    else:
        entries = ObservedEntries.from_dense(matrix)
    n_rows, n_cols = entries.shape
    for ids, n, label in (
        (user_ids, n_rows, "user_ids"),
        (item_ids, n_cols, "item_ids"),
    ):
        if ids is not None and len(ids) != n:
            raise ValueError(f"{label} has {len(ids)} ids for {n} matrix indices.")
    users = entries.rows if user_ids is None else np.asarray(user_ids)[entries.rows]
    items = entries.cols if item_ids is None else np.asarray(item_ids)[entries.cols]
    ratings = entries.values.astype(np.float64, copy=False)
    if not as_frame:
        return users, items, ratings
    import pandas as pd

    return pd.DataFrame({"user": users, "item": items, "rating": ratings})


def sparse_to_dense(matrix) -> np.ndarray:
    """Dense float64 copy of a sparse rating matrix, NaN where nothing is stored.

    Parameters
    ----------
    matrix : scipy.sparse matrix or array
        Stored entries are observed (explicit zeros included).

    Returns
    -------
    X : ndarray of shape matrix.shape
        For the imputers that need dense input.
    """
    return ObservedEntries.from_sparse(matrix).to_dense()


def set_dense_limit(gb: float) -> float:
    """Set the largest dense result (in GB) built from sparse input.

    ``transform`` and ``fit_transform`` of a sparse matrix return a dense
    ndarray; above this size they refuse with a ValueError that points to
    :meth:`~sklearn_mc._base.BaseMatrixImputer.predict_entries` and
    :func:`recommend`. The default is 2 GB.

    Parameters
    ----------
    gb : float
        New limit in GB (10⁹ bytes), > 0.

    Returns
    -------
    previous : float
        The limit before the call (to restore it).
    """
    if not isinstance(gb, numbers.Real) or not gb > 0:
        raise ValueError(f"gb must be a positive number, got {gb!r}.")
    previous = _sparse_path.DENSE_LIMIT_GB
    _sparse_path.DENSE_LIMIT_GB = float(gb)
    return previous


def recommend(
    estimator,
    users=None,
    k: int = 10,
    *,
    exclude_observed: bool = True,
    chunk_size: int | None = None,
):
    """Each user's ``k`` highest-predicted items, without densifying.

    Scores come from ``estimator.predict_entries`` for one block of users at a
    time (``chunk_size`` users × all items), so memory stays bounded whatever
    the number of users.

    Parameters
    ----------
    estimator : fitted imputer with ``predict_entries``
        E.g. an :class:`~sklearn_mc.SGDMFImputer` fitted on the rating matrix.
    users : array-like of int or None, default=None
        Row indices of the users (default: all rows of the training matrix).
    k : int, default=10
        Items per user.
    exclude_observed : bool, default=True
        Leave out the items the user has already rated.
    chunk_size : int or None, default=None
        Users per block (default: about 10⁶ scores per block).

    Returns
    -------
    items : ndarray of int64, shape (n_users, k)
        Column indices, best first; -1 pads a row when fewer than ``k``
        items are left to recommend.
    scores : ndarray of float64, shape (n_users, k)
        Predicted ratings (NaN for padding).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mc import SGDMFImputer
    >>> from sklearn_mc.datasets import make_ratings
    >>> from sklearn_mc.ratings import recommend
    >>> S = make_ratings(50, 30, density=0.2, output="sparse", random_state=0)
    >>> est = SGDMFImputer(rank=3, max_iter=30, random_state=0).fit(S)
    >>> items, scores = recommend(est, users=[0, 1], k=5)
    >>> items.shape, bool(np.all(np.diff(scores, axis=1) <= 0))
    ((2, 5), True)
    """
    if not hasattr(estimator, "predict_entries"):
        raise TypeError(f"{type(estimator).__name__} has no predict_entries.")
    if not getattr(estimator, "_supports_sparse", False):
        # let predict_entries raise its explanation
        estimator.predict_entries([0], [0])
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    if not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    entries = estimator._train_entries
    n_rows = entries.shape[0]
    valid = np.flatnonzero(estimator._valid_mask)
    n_items = valid.size
    users = np.arange(n_rows) if users is None else np.asarray(users).reshape(-1)
    if users.size and (users.dtype.kind not in "iu"):
        raise TypeError(f"users must be integer row indices, got {users.dtype}.")
    users = users.astype(np.int64, copy=False)
    if users.size and (users.min() < 0 or users.max() >= n_rows):
        raise ValueError(
            f"users must be row indices in [0, {n_rows}) (negative indices are not "
            "allowed)."
        )
    if chunk_size is None:
        chunk_size = max(1, _sparse_path.PAIR_CHUNK // max(n_items, 1))
    kk = min(k, n_items)
    out_items = np.full((users.size, k), -1, dtype=np.int64)
    out_scores = np.full((users.size, k), np.nan)
    for start in range(0, users.size, chunk_size):
        block = users[start : start + chunk_size]
        r = np.repeat(block, n_items)
        c = np.tile(valid, block.size)
        scores = estimator.predict_entries(r, c).reshape(block.size, n_items)
        if exclude_observed:
            # entries of valid columns, renumbered 0..n_items-1
            sub = _rows_of(entries, block)
            scores[sub[0], sub[1]] = -np.inf
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        keep = np.isfinite(top_scores)
        rows_out = slice(start, start + block.size)
        out_items[rows_out, :kk] = np.where(keep, valid[top], -1)
        out_scores[rows_out, :kk] = np.where(keep, top_scores, np.nan)
    return out_items, out_scores


def _rows_of(entries: ObservedEntries, block: np.ndarray):
    """(position in block, column) of the observed entries of the block's rows."""
    starts = np.searchsorted(entries.rows, block, side="left")
    stops = np.searchsorted(entries.rows, block, side="right")
    counts = stops - starts
    pos = np.repeat(np.arange(block.size), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    idx = np.repeat(starts, counts) + offsets
    return pos, entries.cols[idx]
