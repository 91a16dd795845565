"""The package's one scaler: the shift and factor a method works in.

:class:`~sklearn_mc._base.BaseMatrixImputer` picks a kind from its
``_scaling`` attribute (``"none"``, ``"standard"``, ``"minmax"`` or
``"magnitude"``), computes the statistics once at fit
(:func:`scaling_from_entries` from the observed entries, or
:func:`_fit_scaling` from a dense matrix and its mask: the same numbers bit
for bit), and maps data in and out with :func:`_apply_scaling` and
:func:`_unscale`. Every kind is scale-free and overflow-safe: statistics and
maps are computed in units of a power of two (exact in floating point).
"""

from __future__ import annotations

import numpy as np

#: a column whose observed std is at most this share of its largest |value|
#: is constant: it is only shifted (by its mean), not divided by its std.
CONSTANT_RTOL = 1e-12


def _pow2_floor(a) -> np.ndarray:
    """The largest power of two ``<= |a|``, elementwise (1 where ``a`` is 0).

    Dividing by a power of two is exact in floating point, so the scaling
    below changes no bit of the arithmetic it protects from over- and
    underflow.
    """
    a = np.abs(np.asarray(a, dtype=np.float64))
    ok = (a > 0) & np.isfinite(a)
    _, exponent = np.frexp(np.where(ok, a, 1.0))
    return np.where(ok, np.ldexp(1.0, exponent - 1), 1.0)


def _apply_scaling(X: np.ndarray, shift: np.ndarray, factor: np.ndarray):
    """``(X - shift) / factor``, computed in units of ``factor``'s power of two.

    Bit for bit the plain formula, except that ``X - shift`` cannot overflow
    for values near the float64 limit.
    """
    unit = _pow2_floor(factor)
    out = X / unit  # a new array: the two steps below work in place
    out -= shift / unit
    out /= factor / unit
    return out


def _unscale(Z: np.ndarray, shift: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """``Z * factor + shift`` (the inverse of :func:`_apply_scaling`), overflow-safe."""
    unit = _pow2_floor(factor)
    with np.errstate(over="ignore"):  # the caller raises a clear error
        out = Z * (factor / unit)
        out += shift / unit
        out *= unit
    return out


def _fit_scaling(X: np.ndarray, mask: np.ndarray, kind: str):
    """Shift and factor (broadcastable to X) that put X in the method's scale.

    Scale-free: the statistics of a column are computed after dividing it by
    the power of two nearest below its largest ``|value|`` (exact), so data of
    any magnitude float64 holds give the same scaled matrix, bit for bit when
    the magnitudes differ by a power of two; and a column counts as constant
    when its std is below :data:`CONSTANT_RTOL` times its own largest
    ``|value|`` (it is then divided by that power of two instead of its std).
    """
    n_features = X.shape[1]
    if kind == "none":
        return np.zeros(n_features), np.ones(n_features)
    if kind == "standard":
        # One scaler for dense and sparse input: the statistics of the
        # observed entries in row-major order (as ObservedEntries holds them).
        cols = np.broadcast_to(np.arange(n_features), X.shape)[mask]
        return scaling_from_entries(X[mask], cols, n_features, kind)
    if kind == "minmax":
        return _minmax(np.nanmin(X), np.nanmax(X), n_features)
    if kind == "magnitude":
        return _magnitude(np.nanmax(np.abs(X)), n_features)
    raise ValueError(f"unknown scaling {kind!r}")  # pragma: no cover


def _magnitude(top: float, n_features: int):
    """No shift; one power of two near the largest ``|value|`` for every column."""
    return np.zeros(n_features), np.full(n_features, float(_pow2_floor(top)))


def _minmax(lo: float, hi: float, n_features: int):
    """One affine map of ``[lo, hi]`` onto ``[-1, 1]`` (overflow-safe)."""
    if hi > lo:
        center, half = lo / 2 + hi / 2, hi / 2 - lo / 2
    else:
        center, half = lo, float(_pow2_floor(lo))
    return np.full(n_features, center), np.full(n_features, half)


def scaling_from_entries(values: np.ndarray, cols: np.ndarray, n_cols: int, kind: str):
    """The package's one scaler: :func:`_fit_scaling` from observed entries.

    ``values`` and ``cols`` are the observed entries, in any order (the
    dense path passes them row-major, as :class:`~sklearn_mc._observed.
    ObservedEntries` holds them, so dense and sparse input of the same data
    get the same statistics bit for bit). Per-column sums are ``bincount``
    sums in the order of the entries; memory is a few arrays of the entries'
    size. Every column must have at least one entry.
    """
    if kind == "none":
        return np.zeros(n_cols), np.ones(n_cols)
    values = np.asarray(values, dtype=np.float64)
    if kind == "standard":
        counts = np.bincount(cols, minlength=n_cols)
        top = np.zeros(n_cols)
        np.maximum.at(top, cols, np.abs(values))
        unit = np.where(top > 0, _pow2_floor(top), _pow2_floor(top.max()))
        scaled = values / unit[cols]
        mean = np.bincount(cols, scaled, minlength=n_cols) / counts
        scaled -= mean[cols]  # in place: the squared deviations
        np.square(scaled, out=scaled)
        var = np.bincount(cols, scaled, minlength=n_cols) / counts
        std = np.sqrt(var)
        std[~(std > CONSTANT_RTOL * top / unit)] = 1.0
        return mean * unit, std * unit
    if kind == "minmax":
        return _minmax(float(values.min()), float(values.max()), n_cols)
    if kind == "magnitude":
        return _magnitude(float(np.abs(values).max()), n_cols)
    raise ValueError(f"unknown scaling {kind!r}")  # pragma: no cover
