"""Input validation of :class:`~sklearn_mc._base.BaseMatrixImputer`.

What the base class checks before a method sees the data: numeric input with
the missing-value marker turned into NaN (:func:`_validate_dense`, pandas
``NA`` included), the ``min_value`` / ``max_value`` bounds
(:func:`_check_limits`) and data small enough for a fit in raw units
(:func:`_check_raw_units`). The base class calls these; they keep no state
of their own.
"""

from __future__ import annotations

import numbers
import sys

import numpy as np
from sklearn.utils.validation import validate_data


def _validate_dense(est, X, *, reset: bool) -> tuple[np.ndarray, np.dtype]:
    """Validated float64 ``X`` (NaN = missing) and the output dtype.

    The output dtype is float32 for float32 input and float64 for every
    other input, as in scikit-learn's imputers; the arithmetic is float64.
    Float64 input with NaN as the marker is returned without a copy (it
    may be the caller's own array): treat the result as read-only.
    """
    nan_marker = _is_nan_marker(est.missing_values)
    X = _pandas_na_to_nan(X)
    try:
        X = validate_data(
            est,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan" if nan_marker else True,
            copy=False,
        )
    except ValueError as exc:
        if "could not convert" in str(exc) or "convert string" in str(exc):
            raise ValueError(
                f"X contains non-numeric data ({exc}). sklearn_mc imputers "
                "need numeric input: encode or drop categorical columns first."
            ) from exc
        raise
    except TypeError as exc:
        if "argument must be" in str(exc) or "NAType" in str(exc):
            raise TypeError(
                f"X contains entries that are not numbers ({exc}). sklearn_mc "
                "imputers need numeric input (NaN, None or pandas.NA mark "
                "missing entries): encode or drop such columns first."
            ) from exc
        raise
    out_dtype = X.dtype
    if nan_marker:
        # No copy of float64 input: nothing in the package writes into the
        # validated array (methods get a scaled copy), so the caller's
        # data is read in place and stays as it was.
        return np.asarray(X, dtype=np.float64), out_dtype
    missing = X == est.missing_values
    X = np.array(X, dtype=np.float64, copy=True)
    X[missing] = np.nan
    return X, out_dtype


def _check_any_observed(mask: np.ndarray) -> None:
    """Refuse input without a single observed entry."""
    if not mask.any():
        raise ValueError(
            "All entries of X are missing: there is nothing to learn from."
        )


def _is_nan(value) -> bool:
    return isinstance(value, numbers.Real) and np.isnan(value)


def _is_pandas_na(value) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and value is pd.NA


def _is_nan_marker(value) -> bool:
    """Whether ``missing_values`` means NaN (``np.nan`` or ``pandas.NA``).

    pandas turns ``pd.NA`` into NaN when a nullable column becomes a float
    array, so ``missing_values=pd.NA`` marks the same entries as ``np.nan``,
    as in :mod:`sklearn.impute`.
    """
    return bool(_is_nan(value) or _is_pandas_na(value))


def _pandas_na_to_nan(X):
    """Replace ``pd.NA`` (and ``None``) by NaN in object-dtype pandas/NumPy input.

    Nullable dtypes (``Int64``, ``Float64``, ...) convert by themselves; an
    object column holding ``pd.NA`` does not, and NumPy cannot make a float
    of ``pd.NA``.
    """
    pd = sys.modules.get("pandas")
    if pd is None:
        return X
    if isinstance(X, pd.DataFrame):
        if any(dtype.kind == "O" for dtype in X.dtypes):
            return X.astype(object).where(X.notna(), np.nan)
        return X
    if isinstance(X, np.ndarray) and X.dtype == object:
        return np.where(pd.isna(X), np.nan, X)
    return X


def _check_limits(est, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """``min_value`` / ``max_value`` as arrays of shape ``(n_features,)``.

    A scalar applies to every column, an array gives one bound per column (of
    the input, empty ones included), None means unbounded, and every
    ``min_value`` must be below its ``max_value``: the rules of
    :class:`sklearn.impute.IterativeImputer`.
    """
    limits = []
    for name, default in (("min_value", -np.inf), ("max_value", np.inf)):
        value = getattr(est, name, default)
        value = default if value is None else value
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a number or array of numbers.") from exc
        if arr.ndim == 0:
            arr = np.full(n_features, float(arr))
        elif arr.shape != (n_features,):
            raise ValueError(
                f"'{name}' should be of shape ({n_features},) when an array-like "
                f"is provided. Got {arr.shape}, instead."
            )
        if np.isnan(arr).any():
            raise ValueError(f"{name} must not contain NaN.")
        limits.append(arr)
    lo, hi = limits
    if not (lo < hi).all():
        bad = np.flatnonzero(~(lo < hi)).tolist()
        raise ValueError(
            "One (or more) features have min_value >= max_value. (features "
            f"{bad}; as in IterativeImputer, min_value must be below max_value)"
        )
    return lo, hi


#: largest ``|value|`` that ``scaling="none"`` (arithmetic in the units of X)
#: accepts: sums of squares of such values stay far from the float64 limit.
RAW_UNITS_MAX = 1e150


def _check_raw_units(est, X: np.ndarray, mask: np.ndarray) -> None:
    """Refuse data too large for a fit the user asked to run in raw units."""
    # The parameter first: reading ``_scaling`` may cost a pass over the data.
    if getattr(est, "scaling", None) != "none" or est._scaling != "none":
        return
    top = float(np.abs(X[mask]).max())
    if top > RAW_UNITS_MAX:
        raise ValueError(
            f"{type(est).__name__}(scaling='none') computes in the units of X, "
            f"and X has values up to |x| = {top:.3g}, whose squares overflow "
            f"float64 (the limit is {RAW_UNITS_MAX:g}). Use scaling='standard' "
            "(scale-free) or rescale X."
        )
