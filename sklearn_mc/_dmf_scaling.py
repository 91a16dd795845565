"""DMF's map of the data onto [-1, 1], the range of its cosine output.

Nguyen, Tsiligianni and Deligiannis, "Matrix Factorization via Deep Learning",
map the rating range [α, β] affinely onto [-1, 1] ("global"); tables whose
columns have different units need one map per column ("column").
:func:`range_scaling` fits the map on the observed entries,
:func:`_common_scale` decides between the two for ``scaling="auto"``, and
:func:`new_column_scaling` maps columns the model never saw
(:meth:`~sklearn_mc.DMFImputer.complete`) by the same rule.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class RangeScaling(NamedTuple):
    """A fitted map ``(x - shift) / half`` of each column onto [-1, 1].

    Attributes
    ----------
    kind : {"global", "column"}
        One map for all columns, or one per column.
    shift, half : ndarray of shape (n_columns,)
        The centre and half-width of each column's range.
    default_half : float
        The half-width given to a constant column (the typical one).
    """

    kind: str
    shift: np.ndarray
    half: np.ndarray
    default_half: float


def _common_scale(lo, hi) -> bool:
    """Whether the columns look like one scale (ratings, pixels) or mixed units.

    Shared scale: the typical column spans at least half of the overall range.
    Columns with a single observed value say nothing and are left out.
    """
    spread = hi - lo
    informative = spread > 0
    if not informative.any():
        return True
    total = hi.max() - lo.min()
    return bool(np.median(spread[informative]) >= 0.5 * total)


def range_scaling(values, cols, n_cols: int, scaling: str, levels) -> RangeScaling:
    """Fit the map of the observed ``values`` (in columns ``cols``) onto [-1, 1].

    ``scaling`` is ``"auto"``, ``"global"`` or ``"column"``; with ``levels``
    (DMF-D) the map is global and spans the levels too, so that the end
    levels are reachable even where nobody used them. Reads the observed
    entries only: no dense copy of the matrix.
    """
    lo = np.full(n_cols, np.inf)
    hi = np.full(n_cols, -np.inf)
    np.minimum.at(lo, cols, values)
    np.maximum.at(hi, cols, values)
    kind = scaling
    if kind == "auto":
        kind = "global" if levels is not None or _common_scale(lo, hi) else "column"
    if levels is not None and kind == "column":
        raise ValueError(
            "levels are shared by all columns, so they need scaling='global' "
            "(or 'auto'), not 'column'."
        )
    if kind == "global":
        lo, hi = np.full_like(lo, lo.min()), np.full_like(hi, hi.max())
        if levels is not None:
            lo, hi = np.minimum(lo, levels[0]), np.maximum(hi, levels[-1])
    half = (hi - lo) / 2
    ok = half > 0
    # a constant column gets the typical spread, so that the cosine's range
    # still means something in its units
    default_half = float(np.median(half[ok])) if ok.any() else 1.0
    half[~ok] = default_half
    return RangeScaling(kind, (hi + lo) / 2, half, default_half)


def new_column_scaling(Y, mask, fitted: RangeScaling):
    """Shift and half-width of new columns ``Y``, by the rule of the fitted ones.

    ``mask`` marks the observed entries of ``Y``. Global: the fitted map;
    per column: each new column's own observed range, as at fit time (an
    empty column gets the median shift, a constant one the typical width).
    """
    n_new = Y.shape[1]
    if fitted.kind == "global":
        return np.full(n_new, fitted.shift[0]), np.full(n_new, fitted.half[0])
    seen = mask.any(axis=0)
    lo = np.where(mask, Y, np.inf).min(axis=0)
    hi = np.where(mask, Y, -np.inf).max(axis=0)
    shift = np.where(seen, (hi + lo) / 2, np.median(fitted.shift))
    half = np.where(seen, (hi - lo) / 2, 0.0)
    half[~(half > 0)] = fitted.default_half
    return shift, half
