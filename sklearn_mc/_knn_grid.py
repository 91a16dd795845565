"""Exact distances for rows on a grid, for :class:`~sklearn_mc.KNNImputer`.

When a row's observed values and the training values are multiples of one
power of two and small enough (:func:`rows_on_grid`: integer tables,
ratings, fixed-point data), every Gram-form sum of its nan-euclidean
distances is exact in floating point, in any summation order. Such rows get
their distances to every training row from one packed matrix product
(:class:`PackedGram`) and are imputed from them completely
(:func:`impute_grid`), with the same donors and ties as scikit-learn. The
rest of the neighbour search (training rows, candidates, exact search,
averages) is in :mod:`sklearn_mc._knn_rows`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _knn_rows as _rows

# Rows per chunk of the grid search: its temporaries (distances to every
# training row) stay near this size.
GRID_BYTES = 2**26


# ------------------------------------------------------------------ exactness
def low_bit_exponent(values: np.ndarray) -> np.ndarray:
    """``e`` with ``|v| = odd · 2**e`` per value (a large number for 0)."""
    v = np.abs(np.asarray(values, dtype=np.float64))
    m, ex = np.frexp(v)
    mant = (m * 2.0**53).astype(np.int64)
    low = mant & -mant
    tz = np.frexp(np.maximum(low, 1).astype(np.float64))[1] - 1
    return np.where(v > 0, ex - 53 + tz, 10**6)


def grid(values: np.ndarray) -> tuple[int, float]:
    """``(e, M)``: the values are multiples of ``2**e`` with ``|value| <= M``."""
    if values.size == 0:
        return 10**6, 0.0
    top = float(np.abs(values).max())
    if np.array_equal(values, np.rint(values)) and (np.fmod(values, 2) != 0).any():
        return 0, top  # integers, some odd
    e = 10**6
    for i in range(0, values.size, _rows._BLOCK):
        e = min(e, int(low_bit_exponent(values[i : i + _rows._BLOCK]).min()))
        if not on_grid((e, top), 1):
            break  # a smaller e cannot put any row back on the grid
    return e, top


def on_grid(train_grid, n_features) -> bool:
    """Whether rows can be on the training data's grid at all (see below).

    False when the training values alone break the condition of
    :func:`rows_on_grid`, which then holds for no row.
    """
    e, top = train_grid
    if top == 0:
        return True
    headroom = math.log2(4 * max(n_features, 1))
    bits = math.log2(top)
    return 2 * (bits - e) + headroom <= 52 and 2 * e >= -1000


def row_grids(X, mask, cap: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row, ``(e, M)``: observed values are multiples of ``2**e``, ``|v| <= M``.

    ``X`` is 0 where missing. With ``cap <= 0``, ``e`` is ``min(e, cap)``,
    and rows of multiples of ``2**cap`` (an exact test, as ``2**-cap >= 1``)
    need no exponent scan.
    """
    step = max(1, _rows._BLOCK // max(X.shape[1], 1))
    parts = []
    for i in range(0, len(X), step):
        block, seen = X[i : i + step], mask[i : i + step]
        e = np.zeros(len(block), dtype=np.int64)
        scan = np.ones(len(block), dtype=bool)
        if cap is not None:
            scaled = np.ldexp(block, -cap)
            scan = ~(scaled == np.rint(scaled)).all(1)
        if scan.any():
            low = low_bit_exponent(block[scan])
            e[scan] = np.where(seen[scan], low, 10**6).min(1)
        if cap is not None:
            np.minimum(e, cap, out=e)
        parts.append(e)
    e_row = np.concatenate(parts or [np.zeros(0, dtype=np.int64)])
    m_row = np.where(mask, np.abs(X), 0.0).max(1) if len(X) else np.zeros(0)
    return e_row, m_row


def rows_on_grid(X, mask, train_grid, n_features, grids=None) -> np.ndarray:
    """Rows whose pairs with every training row have exact Gram sums.

    A row qualifies when its values and the training values are multiples of
    a common ``2**e`` and ``4 n_features (M / 2**e)² <= 2**52`` (``M`` the
    largest magnitude), so that every partial sum of the Gram-form products
    is an integer multiple of ``2**(2e)`` below ``2**53`` of them: exact in
    float64 in any summation order (and equal to the difference form).
    ``grids``: the rows' :func:`row_grids`, when already computed.
    """
    e_train, m_train = train_grid
    e_row, m_row = row_grids(X, mask) if grids is None else grids
    e = np.minimum(e_row, e_train).astype(np.float64)
    top = np.maximum(m_row, m_train)
    with np.errstate(divide="ignore"):
        bits = np.log2(top)
    headroom = math.log2(4 * max(n_features, 1))
    return (top == 0) | (
        (2 * (bits - e) + headroom <= 52)
        & (2 * e >= -1000)
        & (2 * bits + headroom < 1000)
    )


# ------------------------------------------------------ packed Gram product
class PackedGram:
    """Exact ``S`` and ``n_common`` of grid rows by one packed matrix product.

    For rows that :func:`rows_on_grid` accepts, with ``e`` and ``M`` the
    common grid and magnitude of the rows and the training data: in units of
    ``2**e`` the values are integers, ``S <= S_max = 4 n_features (M /
    2**e)²``, and with ``c`` the power of two above ``S_max`` the product of
    ``[a², m_a, a]`` with ``[m_b, b² + c m_b, -2 b]`` is ``S + c n_common``,
    an integer below ``S_max + c n_features``. When that is at most
    ``2**24`` the product is exact in float32 in any summation order (every
    partial sum is an integer of at most that size), else in float64 when at
    most ``2**53``; ``n_common`` and ``S`` are then recovered exactly. When
    neither holds, or float32 products may run at reduced precision (TF32,
    bf16), :func:`~sklearn_mc._knn_rows.gram_sums` is used (exact for these
    rows, three products). The result does not depend on which way is taken.
    """

    def __init__(self, train, e, top, float32_exact=True):
        self.train = train
        n_train, n_features = train.shape
        if top == 0:
            e = 0
        scaled = top * 2.0**-e
        s_max = 4.0 * n_features * scaled * scaled
        c = 2.0 ** math.frexp(s_max)[1]  # the power of two above s_max
        total = s_max + c * n_features
        device = train.X.device
        self.dtype = None
        if total <= 2**24 and float32_exact and _float32_products_exact(device):
            self.dtype = torch.float32
        elif total <= 2**53 and train.X.dtype == torch.float64:
            self.dtype = torch.float64
        if self.dtype is None:
            return
        self.scale, self._unit2, self.c = 2.0**-e, 2.0 ** (2 * e), c
        # Exact in the product's dtype: integers below its 2**24 or 2**53.
        B = (train.X * self.scale).to(self.dtype)
        mB = train.mB.to(self.dtype)
        self.right = torch.cat([mB, B * B + c * mB, -2 * B], 1)

    def __call__(self, A, mA):
        """``S / 2**(2e)`` and ``n_common``, both in :attr:`key_dtype`, exact."""
        if self.dtype is None:
            S, count = _rows.gram_sums(A, mA, self.train)
            return S, count.to(S.dtype)
        a = A * self.scale
        left = torch.cat([a * a, mA.to(a.dtype), a], 1).to(self.dtype)
        V = left @ self.right.T
        count = torch.floor(V * (1 / self.c))
        return V.sub_(count * self.c), count

    @property
    def key_dtype(self):
        return self.train.X.dtype if self.dtype is None else self.dtype

    @property
    def unit2(self):
        """The unit of the sums returned (``2**(2e)``; 1 for the Gram form)."""
        return 1.0 if self.dtype is None else self._unit2

    def distances(self, S, count, n_features_in):
        """scikit-learn's distances from sums in units (float64, NaN if none)."""
        dtype = self.train.X.dtype
        return _rows.distances(
            S.to(dtype).mul_(self.unit2), count.to(torch.int32), n_features_in
        )


def _float32_products_exact(device) -> bool:
    """Whether float32 matrix products run in full float32 precision."""
    if torch.get_float32_matmul_precision() != "highest":
        return False
    if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        return False
    return device.type in ("cpu", "cuda")


# ---------------------------------------------------------------- grid search
def impute_grid(A, mA, gram, train, n_cand, k, weights, p):
    """Impute a chunk of grid rows (see :func:`rows_on_grid`) completely.

    The exact distances to every training row come from one product
    (:class:`PackedGram`); the ``n_cand`` nearest rows are the candidates
    and the next distance bounds the others exactly. Entries whose ``k``
    donors are not certified from the candidates are resolved from the same
    distances over all their column's donors, and the tied ones by
    scikit-learn's ``np.argpartition`` rule on the same row. Returns the
    entries (row in chunk, column) and their estimates.
    """
    n_rows = A.shape[0]
    n_train = train.shape[0]
    S, count = gram(A, mA)
    # Ranked by S / n_common in the product's precision: correctly rounded,
    # hence monotone in the exact ratio (equal ratios give equal keys).
    key = (S / count).masked_fill_(count == 0, torch.inf)
    all_candidates = n_cand >= n_train
    if not all_candidates:
        low, cand = torch.topk(key, n_cand + 1, dim=1, largest=False)
        # Every non-candidate has ratio >= low (1 - u): its distance is at
        # least this bound (the float64 roundings are far inside the margin).
        eps = float(torch.finfo(key.dtype).eps)
        bound = low[:, n_cand].to(A.dtype).mul_(gram.unit2 * p).sqrt_()
        d_thr, cand = bound.mul_(1 - 8 * eps), cand[:, :n_cand]
    else:
        cand = torch.arange(n_train, device=A.device).expand(n_rows, n_train)
        d_thr = torch.full((n_rows,), torch.inf, dtype=A.dtype, device=A.device)
    del key
    cand = torch.sort(cand, dim=1).values
    dist = gram.distances(S.gather(1, cand), count.gather(1, cand), p)
    dist = dist.nan_to_num_(nan=torch.inf)
    ei, ej, est, uncertain, ambiguous = _rows._select(
        dist, cand, mA, train, d_thr, all_candidates, k, weights
    )
    redo = uncertain
    replay = ambiguous & ~uncertain
    if redo.any() or replay.any():
        # The full rows of distances, for the rows that need them only.
        need, local = torch.unique(ei[redo | replay], return_inverse=True)
        dist_full = gram.distances(S[need], count[need], p)
        at = torch.full_like(ei, -1)
        at[redo | replay] = local
        redo, replay = torch.nonzero(redo).flatten(), torch.nonzero(replay).flatten()
        if len(redo):
            est[redo] = _rows.select_exact(
                dist_full, at[redo], ej[redo], train, k, weights, budget=2**26
            )
        if len(replay):
            est[replay] = _rows._argpartition_rule(
                dist_full, at[replay], ej[replay], train, k, weights
            )
    return ei, ej, est
