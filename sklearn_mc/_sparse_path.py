"""The sparse-input path of :class:`~sklearn_mc._base.BaseMatrixImputer`.

The base class hands :mod:`scipy.sparse` input here (``fit``,
``fit_transform``, ``transform``, ``score``) and its public
``predict_entries`` is implemented here, so that ``_base.py`` only carries a
few delegating lines. The rule for sparse input (stored entries are observed,
explicit zeros are ratings of 0, absent entries are unknown) is documented in
:mod:`sklearn_mc._observed`.

A method opts in with the class attribute ``_supports_sparse = True`` and two
hooks working in the method's scaled units on valid columns only:

``_fit_entries(entries)``
    learn from an :class:`~sklearn_mc._observed.ObservedEntries`;
``_predict_entries(rows, cols)``
    the model's values at the given (row, column) pairs of the training
    matrix (1-D int64 arrays), as a float64 ndarray.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from ._observed import ObservedEntries, is_sparse
from ._scaling import _apply_scaling, _unscale

__all__ = ["is_sparse"]  # re-exported for _base.py

#: dense results (``transform`` / ``fit_transform`` of sparse input) larger
#: than this many GB (10⁹ bytes) are refused; use ``predict_entries`` or
#: :func:`sklearn_mc.ratings.recommend` instead. Change it with
#: :func:`sklearn_mc.ratings.set_dense_limit`.
DENSE_LIMIT_GB = 2.0
#: (row, column) pairs predicted per chunk (bounds temporaries to ~10² MB).
PAIR_CHUNK = 2**20


def sparse_imputers() -> list[str]:
    """Names of the exported imputers that accept sparse input."""
    import sklearn_mc

    return sorted(
        name
        for name in sklearn_mc.__all__
        if getattr(getattr(sklearn_mc, name), "_supports_sparse", False)
    )


def _refuse_sparse(est) -> None:
    raise TypeError(
        f"{type(est).__name__} does not accept sparse input (scipy.sparse). "
        f"Imputers that do: {', '.join(sparse_imputers()) or 'none'}. Otherwise "
        "densify with NaN at the unobserved entries first, e.g. "
        "sklearn_mc.ratings.sparse_to_dense(S) (stored entries are observed)."
    )


def check_dense_size(n_rows: int, n_cols: int, what: str) -> None:
    """Refuse a dense float64 result above :data:`DENSE_LIMIT_GB`."""
    gb = n_rows * n_cols * 8 / 1e9
    if gb > DENSE_LIMIT_GB:
        raise ValueError(
            f"{what} of this sparse input would be a dense {n_rows} x {n_cols} "
            f"float64 array of {gb:.1f} GB, above the limit of "
            f"{DENSE_LIMIT_GB:g} GB. Fit with fit(X) and ask for the values you "
            "need: est.predict_entries(rows, cols) or "
            "sklearn_mc.ratings.recommend(est, users, k); or raise the limit with "
            "sklearn_mc.ratings.set_dense_limit(gb)."
        )


def _validate_sparse(est, X, *, reset: bool) -> ObservedEntries:
    """Validate sparse ``X`` (shape, feature count) and return its entries."""
    if not getattr(est, "_supports_sparse", False):
        _refuse_sparse(est)
    X = validate_data(
        est,
        X,
        reset=reset,
        accept_sparse=True,
        accept_large_sparse=True,
        dtype=None,
        ensure_all_finite=False,
        copy=False,
    )
    entries = ObservedEntries.from_sparse(X)
    marker = est.missing_values
    if isinstance(marker, numbers.Real) and not np.isnan(marker):
        # A stored value equal to a non-NaN marker is missing, as in dense
        # input (so missing_values=0 also reads stored zeros as missing).
        entries = entries.subset(entries.values != marker)
    return entries


def _scaled(est, entries: ObservedEntries) -> ObservedEntries:
    """The entries in the estimator's scaled units, bit for bit ``_apply_scaling``.

    In chunks, so the per-entry copies of the shifts and factors stay small.
    """
    shift, factor = est._scale_shift, est._scale_factor
    values, cols = entries.values, entries.cols
    out = np.empty(values.shape, dtype=np.result_type(values.dtype, shift.dtype))
    for start in range(0, values.size, _SCALE_CHUNK):
        part = slice(start, start + _SCALE_CHUNK)
        c = cols[part]
        out[part] = _apply_scaling(values[part], shift[c], factor[c])
    return entries.with_values(out)


#: entries scaled per chunk by :func:`_scaled` (512 KiB of float64: temporaries
#: this small are reused chunk after chunk, where 8 MB ones were left to the
#: C allocator, which kept about 50 MB of them resident at 4 million entries).
_SCALE_CHUNK = 2**16


def _unscaled(est, values: np.ndarray, cols: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return _unscale(values, est._scale_shift[cols], est._scale_factor[cols])


def remember_entries(est, X: np.ndarray) -> None:
    """Dense fit of a sparse-capable method: keep its observed entries.

    ``X`` is the validated, unscaled training data restricted to the valid
    columns (NaN = missing); :meth:`predict_entries` and
    :func:`~sklearn_mc.ratings.recommend` read the observed values from it.
    """
    if getattr(est, "_supports_sparse", False):
        # int32 indices where the shape allows (16 bytes per entry) for the
        # methods that take them as they are (``_compact_entries``)
        compact = bool(getattr(est, "_compact_entries", False))
        est._train_entries = ObservedEntries.from_dense(X, compact=compact)


def fit_sparse(est, X) -> ObservedEntries:
    """``fit`` on sparse ``X``; returns the (unscaled, valid-column) entries."""
    from ._torch import fit_context, seed_from

    est._validate_params()
    entries = _validate_sparse(est, X, reset=True)
    if entries.n_observed == 0:
        raise ValueError(
            "The sparse matrix stores no entries: there is nothing to learn from "
            "(for sparse input, stored entries are the observed ones)."
        )
    if getattr(est, "add_indicator", False):
        raise ValueError(
            "add_indicator=True is not available for sparse input (the indicator "
            "of a rating matrix is its sparsity pattern: use X != 0 or the "
            "matrix itself); set add_indicator=False."
        )
    from ._base import _check_limits

    est._min_value, est._max_value = _check_limits(est, entries.shape[1])
    est.indicator_ = None
    est._valid_mask = entries.col_counts() > 0
    if not est._valid_mask.all():
        entries = entries.select_columns(est._valid_mask)
    # kept before the scaling is chosen: a method's scaling="auto" may read it
    est._train_entries = entries
    est._scale_shift, est._scale_factor = est._scaling_statistics(
        entries.values, entries.cols, entries.shape[1]
    )
    with fit_context(seed_from(est.random_state), est._device):
        est._fit_entries(_scaled(est, entries))
    return entries


def _check_finite(est, values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        hint = (
            " (the optimisation diverged); try a smaller learning_rate or "
            "stronger regularisation"
            if "learning_rate" in est.get_params()
            else ": a numerical failure; try a larger shrinkage or a smaller rank"
        )
        raise RuntimeError(
            f"{type(est).__name__} produced non-finite values for missing "
            f"entries{hint}."
        )


def fit_transform_sparse(est, X) -> np.ndarray:
    """``fit_transform`` on sparse ``X``: the dense completion (size-checked)."""
    n_rows, n_cols = X.shape
    check_dense_size(n_rows, n_cols, f"{type(est).__name__}.fit_transform")
    entries = fit_sparse(est, X)
    n_valid = entries.shape[1]
    out = np.empty((n_rows, n_valid))
    step = max(1, PAIR_CHUNK // max(n_valid, 1))
    col_grid = np.arange(n_valid, dtype=np.int64)
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        r = np.repeat(np.arange(start, stop, dtype=np.int64), n_valid)
        c = np.tile(col_grid, stop - start)
        block = _unscaled(est, est._predict_entries(r, c), c)
        out[start:stop] = block.reshape(stop - start, n_valid)
    mask = np.zeros(out.shape, dtype=bool)
    mask[entries.rows, entries.cols] = True
    out[entries.rows, entries.cols] = entries.values
    _check_finite(est, out)
    # the dense path's clipping and empty columns (no indicator for sparse)
    return est._assemble(out, mask, None, np.dtype(np.float64))


def _dense_rows(est, entries: ObservedEntries, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of ``entries`` (all columns) as dense input of ``est``."""
    part = entries.row_slice(start, stop)
    block = np.full(part.shape, est.missing_values, dtype=np.float64)
    block[part.rows, part.cols] = part.values
    return block


def _row_step(n_cols: int) -> int:
    return max(1, PAIR_CHUNK // max(n_cols, 1))


def transform_sparse(est, X) -> np.ndarray:
    """``transform`` of sparse ``X``: dense ``transform`` of bounded row blocks.

    Rows are completed independently, so completing blocks of rows and
    stacking them is ``transform`` of the whole matrix.
    """
    check_is_fitted(est)
    entries = _validate_sparse(est, X, reset=False)
    n_rows, n_cols = entries.shape
    n_out = n_cols if est.keep_empty_features else int(est._valid_mask.sum())
    check_dense_size(n_rows, n_out, f"{type(est).__name__}.transform")
    step = _row_step(n_cols)
    blocks = [
        est.transform(_dense_rows(est, entries, start, min(start + step, n_rows)))
        for start in range(0, n_rows, step)
    ]
    return np.concatenate(blocks, axis=0)


def score_sparse(est, X) -> float:
    """``score`` of sparse ``X`` without a dense copy of the whole matrix.

    The same entries are hidden as for the dense equivalent of ``X``; the
    rest is completed by ``transform`` in bounded row blocks.
    """
    from ._base import SCORE_FRACTION, SCORE_SEED

    check_is_fitted(est)
    entries = _validate_sparse(est, X, reset=False)
    valid = est._valid_mask
    # dense score hides among the entries of the valid columns
    entries = entries.subset(valid[entries.cols])
    kept, hidden = entries.split(SCORE_FRACTION, SCORE_SEED)
    if hidden.n_observed == 0:
        raise ValueError(
            "score needs at least one observed entry in X to hide and predict."
        )
    n_rows, n_cols = entries.shape
    out_cols = np.arange(n_cols) if est.keep_empty_features else np.cumsum(valid) - 1
    step = _row_step(n_cols)
    sq_err = 0.0
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        target = hidden.row_slice(start, stop)
        if target.n_observed == 0:
            continue
        done = est.transform(_dense_rows(est, kept, start, stop))
        pred = done[target.rows, out_cols[target.cols]]
        sq_err += float(((pred - target.values) ** 2).sum())
    return -float(np.sqrt(sq_err / hidden.n_observed))


def _as_index(name: str, values, size: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of indices, got {arr.shape}.")
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer indices, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= size):
        bad = int(arr.min() if arr.min() < 0 else arr.max())
        raise ValueError(
            f"{name} holds index {bad}, outside [0, {size}) of the training "
            "matrix (negative indices are not allowed)."
        )
    return arr


def predict_entries(est, rows, cols) -> np.ndarray:
    """Implementation of :meth:`BaseMatrixImputer.predict_entries`."""
    check_is_fitted(est)
    if not getattr(est, "_supports_sparse", False):
        raise TypeError(
            f"{type(est).__name__} does not support predict_entries; use "
            "fit_transform and index the result. Imputers that support it: "
            f"{', '.join(sparse_imputers()) or 'none'}."
        )
    entries = est._train_entries
    n_rows = entries.shape[0]
    rows = _as_index("rows", rows, n_rows)
    cols = _as_index("cols", cols, est.n_features_in_)
    if rows.shape != cols.shape:
        raise ValueError(
            f"rows and cols must have the same length, got {rows.size} and {cols.size}."
        )
    valid = est._valid_mask
    # A column without any observed entry at fit (a cold-start item) has no
    # model: its pairs get the mean of all observed training values.
    out = np.full(rows.size, float(entries.values.mean()))
    if not valid.all():
        keep = np.flatnonzero(valid[cols])
        vcols = (np.cumsum(valid) - 1)[cols[keep]]
        vrows = rows[keep]
    else:
        keep, vrows, vcols = None, rows, cols
    lo, hi = _limits(est)
    if lo is not None:
        out = np.clip(out, lo[cols], hi[cols])
    values = np.empty(vrows.size)
    for start in range(0, vrows.size, PAIR_CHUNK):
        part = slice(start, start + PAIR_CHUNK)
        r, c = vrows[part], vcols[part]
        pred = _unscaled(est, est._predict_entries(r, c), c)
        if lo is not None:
            orig = cols[part] if keep is None else cols[keep[part]]
            pred = np.clip(pred, lo[orig], hi[orig])
        found, observed = entries.lookup(r, c)
        values[part] = np.where(found, observed, pred)
    _check_finite(est, values)
    if keep is None:
        return values
    out[keep] = values
    return out


def _limits(est):
    """``(min_value, max_value)`` per input column, or ``(None, None)``."""
    lo = getattr(est, "_min_value", None)
    hi = getattr(est, "_max_value", None)
    if lo is None or not (np.isfinite(lo).any() or np.isfinite(hi).any()):
        return None, None
    return lo, hi
