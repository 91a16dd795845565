"""k-nearest-neighbour imputation with nan-euclidean distances, in torch."""

from __future__ import annotations

import math
import numbers

import numpy as np
import sklearn
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseMatrixImputer
from ._optim import progress
from ._torch import compute_dtype, to_numpy, to_tensor

# Candidates per row: ``1.5 k / observed-fraction`` plus this margin, so that
# nearly every entry finds its k donors among them (the rest fall back to an
# exact search); each candidate costs n_features work per row.
_EXTRA_CANDIDATES = 8
# Rows per chunk are also capped so that a chunk's temporaries stay near this
# size: the many elementwise passes then run in cache (about 2x faster on CPU).
_CACHE_BYTES = 2**24


class KNNImputer(BaseMatrixImputer):
    """Complete missing entries with the mean of the k nearest neighbours.

    With ``axis="samples"`` (default) this is scikit-learn's
    :class:`sklearn.impute.KNNImputer`: a missing entry ``(i, j)`` gets the
    mean of column ``j`` over the ``n_neighbors`` training rows nearest to row
    ``i`` among those that observe ``j``. Distances are nan-euclidean,
    ``sqrt(n_features / n_common * sum((x - y)²))`` over the coordinates both
    rows observe, undefined when they share none. Donors at an undefined
    distance rank last and count for nothing; a row with no donor at a defined
    distance gets the column's observed mean. With matching settings the
    output equals scikit-learn's to rounding error, in ``fit_transform`` and
    in ``transform`` of new rows.

    With ``axis="features"`` the neighbours are columns: the training columns
    are standardised (observed mean 0, standard deviation 1), the
    nan-euclidean distances between them are learned at fit time, and a
    missing entry ``(i, j)`` gets the (weighted) mean of row ``i``'s
    standardised values in the ``n_neighbors`` columns nearest to ``j`` that
    row ``i`` observes, mapped back to column ``j``'s units. Standardising
    makes the distance between two columns a function of their correlation,
    so columns on different scales can lend to each other.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbouring rows (or columns) to average.
    weights : {"uniform", "distance"}, default="uniform"
        ``"uniform"``: plain mean. ``"distance"``: weights ``1 / d``; when
        some neighbours are at distance 0, only they count, equally
        (scikit-learn's rule).
    axis : {"samples", "features"}, default="samples"
        Whether the neighbours are rows (scikit-learn's KNNImputer) or
        columns.
    missing_values : float, default=np.nan
        Marker of the missing entries.
    keep_empty_features : bool, default=False
        Keep all-missing columns in the output (filled with 0) instead of
        dropping them, like scikit-learn's imputers.
    device : str, default="auto"
        Torch device: "auto", "cpu", "cuda", "cuda:N" or "mps".
    random_state : int, RandomState instance or None, default=None
        Unused (the method is deterministic); kept for the shared API.
    verbose : int, default=0
        Show a progress bar over the chunks of rows.

    Attributes
    ----------
    n_iter_ : int
        Always 1 (no iterations).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X is a DataFrame.

    Notes
    -----
    The training data (its columns that are not all missing) and its mask are
    stored as NumPy arrays; with ``axis="features"`` also the
    ``n_features × n_features`` column distances.

    **How the neighbours are found.** With ``axis="samples"`` one of two
    exact searches runs, picked by a cost model from the training mask:

    *Candidates* (the usual choice; dense or moderately sparse data). The
    distances of a chunk of rows to all training rows are computed in
    float32 (half the cost of float64) as certified lower bounds (a
    rounding-error bound is subtracted). The ``m`` rows with the smallest
    bounds are the candidates, ``m ≈ 1.5 n_neighbors / (observed fraction) +
    8``; their distances are recomputed exactly in float64 and each missing
    entry takes its ``k`` nearest donors among them. An entry is accepted
    only when its ``k``-th donor is provably nearer than every non-candidate
    (or all possible donors are candidates); the rare others go through the
    donor search below, so the result never depends on float32.

    *Donors* (very sparse data such as ratings, where columns have few
    donors). Exact float64 distances of a chunk to all training rows, then
    for each missing entry a top-k over its column's donors, batched over
    columns with similar donor counts.

    **Memory.** Rows are completed in chunks of ``chunk_rows`` rows, the
    largest with ``chunk_rows × (2 n_train + 4 m n_features) × 8 bytes ≤
    working_memory`` (candidates) or ``chunk_rows × (2 n_train + g) × 8 bytes
    ≤ working_memory`` (donors; ``g = 2 Σ_j d_j (1 - d_j / n_train)`` with
    ``d_j`` the donors of column ``j``, i.e. about twice the donors a typical
    row's missing entries look at), where ``working_memory`` is
    ``sklearn.get_config()["working_memory"]`` MiB (1024 by default). In
    particular ``chunk_rows × n_train × 8 bytes ≤ working_memory``, and the
    peak temporary memory is within a small constant factor of
    ``working_memory``. With ``axis="features"``, ``chunk_rows × 4
    n_features × 8 bytes ≤ working_memory``. Time is dominated by the
    distance products, ``O(n_rows × n_train × n_features)``.

    Ties between equally distant donors are broken arbitrarily, as in
    scikit-learn.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mc import KNNImputer
    >>> X = [[1, 2, np.nan], [3, 4, 3], [np.nan, 6, 5], [8, 8, 7]]
    >>> KNNImputer(n_neighbors=2).fit_transform(X)
    array([[1. , 2. , 4. ],
           [3. , 4. , 3. ],
           [5.5, 6. , 5. ],
           [8. , 8. , 7. ]])
    """

    _parameter_constraints: dict = {
        **BaseMatrixImputer._parameter_constraints,
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "weights": [StrOptions({"uniform", "distance"})],
        "axis": [StrOptions({"samples", "features"})],
    }

    _scaling = "none"

    # Private knobs for tests: force small chunks, few candidates or one of
    # the two neighbour searches ("candidates" or "donors").
    _chunk_rows: int | None = None
    _n_candidates: int | None = None
    _search: str | None = None

    def __init__(
        self,
        *,
        n_neighbors=5,
        weights="uniform",
        axis="samples",
        missing_values=np.nan,
        keep_empty_features=False,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.axis = axis
        self.missing_values = missing_values
        self.keep_empty_features = keep_empty_features
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _fit(self, X, mask):
        self._fit_X = X
        self._mask_fit_X = mask
        counts = mask.sum(axis=0)
        self._col_mean = np.where(mask, X, 0.0).sum(axis=0) / counts
        if self.axis == "features":
            centred = np.where(mask, X - self._col_mean, 0.0)
            std = np.sqrt((centred**2).sum(axis=0) / counts)
            std[~(std > 1e-12 * np.maximum(1.0, np.abs(self._col_mean)))] = 1.0
            self._col_std = std
            self._col_ratio = self._column_ratios(centred / std, mask)
        self.n_iter_ = 1
        # Completing the training rows is transform's rule: a row is never
        # its own donor for a column it lacks, exactly as in scikit-learn.
        return None

    def _column_ratios(self, Z, mask):
        """Mean squared difference over common rows between all columns."""
        device = self._device
        dtype = compute_dtype(device)
        Zt = to_tensor(Z.T, device, dtype)
        Mt = to_tensor(mask.T, device).to(dtype)
        n_cols = Zt.shape[0]
        chunk = _chunk_size(n_cols, n_cols)
        out = np.empty((n_cols, n_cols))
        for start in range(0, n_cols, chunk):
            sl = slice(start, start + chunk)
            out[sl] = to_numpy(_exact_ratios(Zt[sl], Mt[sl], Zt, Mt))
        return out

    # ------------------------------------------------------------ transform
    def _transform(self, X, mask):
        out = X.copy()
        rows = np.flatnonzero(~mask.all(axis=1))
        if rows.size:
            if self.axis == "samples":
                self._impute_from_rows(X, mask, rows, out)
            else:
                self._impute_from_columns(X, mask, rows, out)
        return out

    def _impute_from_rows(self, X, mask, rows, out):
        device = self._device
        dtype = compute_dtype(device)
        fit_X, fit_mask = self._fit_X, self._mask_fit_X
        n_train, n_features = fit_X.shape
        k = self.n_neighbors

        # Centring and one global scale change no nan-euclidean ranking (both
        # rows shift by the same column offsets) but keep float32 bounded.
        B = np.where(fit_mask, fit_X - self._col_mean, 0.0)
        A_all = np.where(mask[rows], X[rows] - self._col_mean, 0.0)
        peak = max(np.abs(B).max(), np.abs(A_all).max())
        scale = 1.0 / peak if peak > 0 else 1.0
        A_all *= scale
        train = _Train(B * scale, fit_mask, fit_X, self._col_mean, device, dtype)

        n_cand = self._n_candidates
        if n_cand is None:
            n_cand = math.ceil(1.5 * k / fit_mask.mean()) + _EXTRA_CANDIDATES
        n_cand = max(1, min(n_cand, n_train))
        search = self._search or _pick_search(fit_mask, n_cand)

        bar = progress(len(rows), self.verbose, "KNNImputer")
        if search == "candidates":
            bounds = _LowerBounds(train.B, train.mB_f)
            chunk = self._chunk_rows or min(
                _chunk_size(2 * n_train + 4 * n_cand * n_features, len(rows)),
                max(16, _CACHE_BYTES // (8 * (n_train + n_cand * n_features))),
            )
            pending_pos, pending_cols = [], []
            for start in range(0, len(rows), chunk):
                idx = rows[start : start + chunk]
                A = to_tensor(A_all[start : start + chunk], device, dtype)
                mA = to_tensor(mask[idx], device)
                ei, ej, est, todo = _impute_candidates(
                    A, mA, train, bounds, n_cand, k, self.weights
                )
                ei, ej, todo = to_numpy(ei), to_numpy(ej), to_numpy(todo)
                out[idx[ei], ej] = to_numpy(est)
                pending_pos.append(start + ei[todo])
                pending_cols.append(ej[todo])
                bar.update(len(idx))
            pos, cols = np.concatenate(pending_pos), np.concatenate(pending_cols)
        else:
            pos, cols = np.nonzero(~mask[rows])
        # The remaining entries (all of them when searching donors directly,
        # the few uncertified ones otherwise): exact distances to every
        # training row, chunked by rows.
        chunk = self._chunk_rows or _chunk_size(
            2 * n_train + train.gather_per_row, len(rows)
        )
        for start in range(0, len(rows), chunk):
            lo, hi = np.searchsorted(pos, [start, start + chunk])
            if hi > lo:
                block = np.unique(pos[lo:hi])
                local = np.searchsorted(block, pos[lo:hi])
                est = _impute_exact(
                    to_tensor(A_all[block], device, dtype),
                    to_tensor(mask[rows[block]], device),
                    train,
                    torch.as_tensor(local, device=device),
                    torch.as_tensor(cols[lo:hi], device=device),
                    k,
                    self.weights,
                )
                out[rows[pos[lo:hi]], cols[lo:hi]] = to_numpy(est)
            if search != "candidates":
                bar.update(min(chunk, len(rows) - start))
        bar.close()

    def _impute_from_columns(self, X, mask, rows, out):
        device = self._device
        dtype = compute_dtype(device)
        n_features = X.shape[1]
        mean = to_tensor(self._col_mean, device, dtype)
        std = to_tensor(self._col_std, device, dtype)
        col_ratio = to_tensor(self._col_ratio, device, dtype)
        k = min(self.n_neighbors, n_features)
        chunk = self._chunk_rows or _chunk_size(4 * n_features, len(rows))
        bar = progress(len(rows), self.verbose, "KNNImputer")
        for start in range(0, len(rows), chunk):
            idx = rows[start : start + chunk]
            mZ = to_tensor(mask[idx], device)
            Z = (to_tensor(np.nan_to_num(X[idx]), device, dtype) - mean) / std
            est = torch.zeros_like(Z)
            missing = ~mZ
            for j in torch.nonzero(missing.any(0)).flatten().tolist():
                receivers = torch.nonzero(missing[:, j]).flatten()
                dist = torch.where(mZ[receivers], col_ratio[j], torch.inf)
                near, where = _smallest(dist, k)
                z = _neighbour_mean(
                    near,
                    torch.isfinite(near),
                    Z[receivers].gather(1, where),
                    self.weights,
                )
                # No observed column at a defined distance: the column mean.
                est[receivers, j] = torch.nan_to_num(z, nan=0.0)
            est = est * std + mean
            out[idx] = np.where(mask[idx], out[idx], to_numpy(est))
            bar.update(len(idx))
        bar.close()


# ---------------------------------------------------------------- helpers
def _chunk_size(values_per_row: int, n_rows: int) -> int:
    """Rows per chunk so that ``rows × values_per_row`` float64 fit in memory."""
    budget = sklearn.get_config()["working_memory"] * 2**20
    return int(max(1, min(n_rows, budget // (8 * max(values_per_row, 1)))))


class _Train:
    """Training rows on the device, plus each column's donors in buckets.

    ``B``: scaled, centred values (0 where missing); ``mB``: mask; ``values``:
    raw values (0 where missing). Columns are grouped by their number of
    donors ``d`` (buckets ``2^(b-1) < d <= 2^b``); a bucket's table lists
    each column's donor rows, padded with ``n_train``, so that donor searches
    run per bucket rather than per column, with at most 2x padding.
    """

    def __init__(self, B, fit_mask, fit_X, col_mean, device, dtype):
        n_train, n_features = fit_mask.shape
        self.B = to_tensor(B, device, dtype)
        self.mB = to_tensor(fit_mask, device)
        self.mB_f = self.mB.to(dtype)
        self.values = to_tensor(np.where(fit_mask, fit_X, 0.0), device, dtype)
        self.col_mean = to_tensor(col_mean, device, dtype)
        n_donors = fit_mask.sum(0)
        self.n_donors = to_tensor(n_donors, device)
        # Expected padded donors over a row's missing entries (memory bound).
        self.gather_per_row = int(2 * (n_donors * (1 - n_donors / n_train)).sum())
        bucket = np.ceil(np.log2(n_donors)).astype(np.int64)
        slot = np.zeros(n_features, dtype=np.int64)
        self.tables = []
        for b in np.unique(bucket):
            cols = np.flatnonzero(bucket == b)
            slot[cols] = np.arange(len(cols))
            col, row = np.nonzero(fit_mask[:, cols].T)
            first = np.concatenate([[0], np.cumsum(n_donors[cols])[:-1]])
            table = np.full((len(cols), n_donors[cols].max()), n_train)
            table[col, np.arange(len(col)) - first[col]] = row
            self.tables.append(to_tensor(table, device))
        self.bucket = to_tensor(np.searchsorted(np.unique(bucket), bucket), device)
        self.slot = to_tensor(slot, device)


def _pick_search(fit_mask, n_cand):
    """``"candidates"`` or ``"donors"``, whichever the cost model says is faster.

    Per receiver row, in rough CPU nanoseconds: the candidate search costs a
    float32 product over ``4 n_features`` per training row plus work per
    candidate and per (missing entry, candidate); the direct donor search a
    float64 product plus work per (missing entry, donor).
    """
    n_train, n_features = fit_mask.shape
    observed = fit_mask.mean()
    n_donors = fit_mask.sum(0)
    product = n_train * n_features * 8
    candidates = (
        product / 60
        + 9 * n_cand * observed * n_features
        + 12 * n_cand * (1 - observed) * n_features
    )
    donors = product / 25 + 4 * (n_donors * (1 - n_donors / n_train)).sum()
    return "candidates" if candidates <= donors else "donors"


def _exact_ratios(A, mA, B, mB):
    """Nan-euclidean ``sum((a - b)²) / n_common`` per pair; inf when none.

    ``A``, ``B`` are zero-filled, ``mA``, ``mB`` their masks (float). The
    factor ``n_features`` of the distance is left out: it changes neither
    the ranking nor the normalised ``1 / d`` weights.
    """
    d2 = torch.cat([A * A, mA, A], 1) @ torch.cat([mB, B * B, -2 * B], 1).T
    d2.clamp_(min=0)
    common = mA @ mB.T
    return torch.where(common > 0, d2 / common, torch.inf)


class _LowerBounds:
    """Float32 lower bounds of the exact nan-euclidean ratios, for ranking.

    For inputs rounded to float32 and any summation order, a length-K dot
    product errs by at most ``γ_K Σ|x y|`` with ``γ_K = K u / (1 - K u)``
    (Higham, Accuracy and Stability of Numerical Algorithms, 3.1). Here
    ``Σ|x y| ≤ 2 (‖a‖² + ‖b‖²)``, so ``err · (‖a‖² + ‖b‖²)`` with
    ``err = 4 γ`` is subtracted (folded into the product for ``‖b‖²``); the
    values are at most 1 in magnitude (global scale), so underflow costs at
    most ``K · 2⁻¹²⁶`` per pair. The final subtraction and division round
    by at most ``2u`` relatively, which :meth:`threshold` accounts for.
    """

    def __init__(self, B, mB):
        n_features = B.shape[1]
        self.dtype = torch.float32
        K = 3 * n_features + 3
        u = 2.0**-24
        # Reduced-precision float32 products (TF32, bf16) or huge widths would
        # void or blunt the bound: use the exact dtype then.
        if (
            torch.get_float32_matmul_precision() != "highest"
            or (B.is_cuda and torch.backends.cuda.matmul.allow_tf32)
            or K * u > 1e-2
            or B.dtype == torch.float32
        ):
            self.dtype = B.dtype
            u = float(torch.finfo(B.dtype).eps) / 2
        self.u = u
        self.err = 4 * K * u / (1 - K * u)
        self.tiny = K * 2.0**-120
        b_norm = (B * B).sum(1, keepdim=True)
        right = torch.cat([mB, B * B, -2 * B, -self.err * b_norm], 1)
        self.right = right.to(self.dtype).T.contiguous()
        self.mB = mB.to(self.dtype).T.contiguous()

    def __call__(self, A, mA_f):
        dt = self.dtype
        ones = torch.ones_like(A[:, :1])
        left = torch.cat([A * A, mA_f, A, ones], 1).to(dt)
        slack = ((A * A).sum(1, keepdim=True) * self.err + self.tiny).to(dt)
        lower = torch.matmul(left, self.right).sub_(slack)
        lower.div_(mA_f.to(dt) @ self.mB)
        # No common coordinate: a negative numerator over 0 gives -inf (never
        # a finite bound, as slack > 0); such pairs must rank last.
        return lower.nan_to_num_(neginf=torch.inf)

    def threshold(self, low):
        """A lower bound of every exact ratio whose float bound is ``>= low``."""
        return torch.where(low > 0, low * (1 - 8 * self.u), low)


def _impute_candidates(A, mA, train, bounds, n_cand, k, weights):
    """Impute a chunk's missing entries from its candidate neighbours.

    Returns the entries (row in chunk, column), their estimates and which of
    them could not be certified exact and must be redone.
    """
    B, mB = train.B, train.mB
    n_rows, n_train = A.shape[0], B.shape[0]
    lower = bounds(A, mA.to(A.dtype))
    if n_cand < n_train:
        low, cand = torch.topk(lower, n_cand + 1, dim=1, largest=False)
        threshold = bounds.threshold(low[:, n_cand]).to(A.dtype)
        cand = cand[:, :n_cand]
    else:
        cand = torch.arange(n_train, device=A.device).expand(n_rows, n_train)
        threshold = torch.full((n_rows,), torch.inf, dtype=A.dtype, device=A.device)
    del lower

    ratio = _candidate_ratios(A, mA, B, mB, cand)
    ratio, order = torch.sort(ratio, dim=1, stable=True)
    cand = cand.gather(1, order)

    # Per missing entry: the first k candidates that observe its column.
    ei, ej = torch.nonzero(~mA, as_tuple=True)
    ratio_e = ratio.index_select(0, ei)
    flat = (cand.index_select(0, ei) * mB.shape[1]).add_(ej[:, None]).view(-1)
    eligible = mB.view(-1).index_select(0, flat).view(ratio_e.shape)
    eligible.logical_and_(torch.isfinite(ratio_e))
    selected = eligible.logical_and_(eligible.cumsum(1, dtype=torch.int32) <= k)
    values = train.values.view(-1).index_select(0, flat).view(ratio_e.shape)
    est = _neighbour_mean(ratio_e, selected, values, weights)
    found = selected.sum(1)
    kth = torch.where(selected, ratio_e, -torch.inf).amax(1)
    thr = threshold.index_select(0, ei)
    certified = (
        torch.isinf(thr) | (found == train.n_donors[ej]) | ((found == k) & (kth < thr))
    )
    est = torch.where(found > 0, est, train.col_mean[ej])
    return ei, ej, est, ~certified


def _candidate_ratios(A, mA, B, mB, cand):
    """Exact ratios (difference form) of each row to its candidates.

    Only the coordinates a row observes can be common, so sparse rows gather
    just those (``width`` of them) instead of all ``n_features``.
    """
    n_rows, n_features = A.shape
    width = int(mA.sum(1).max()) if n_rows else 0
    if width < n_features // 2:
        observed = torch.argsort((~mA).to(torch.int8), dim=1, stable=True)
        observed = observed[:, :width]
        a = A.gather(1, observed)
        in_row = mA.gather(1, observed)
        flat = (cand[:, :, None] * n_features + observed[:, None, :]).view(-1)
        shape = (n_rows, cand.shape[1], width)
        common = mB.view(-1).index_select(0, flat).view(shape)
        diff = B.view(-1).index_select(0, flat).view(shape)
    else:
        a, in_row, flat = A, mA, cand.reshape(-1)
        common = mB.index_select(0, flat).view(n_rows, -1, n_features)
        diff = B.index_select(0, flat).view(common.shape)
    common.logical_and_(in_row[:, None, :])
    diff.sub_(a[:, None, :]).masked_fill_(~common, 0.0)
    n_common = common.sum(2)
    ratio = diff.square_().sum(2).div_(n_common)
    return ratio.masked_fill_(n_common == 0, torch.inf)


def _impute_exact(A, mA, train, ei, ej, k, weights):
    """Entries ``(ei, ej)`` from exact distances to every training row."""
    rows, local = torch.unique(ei, return_inverse=True)
    ratio = _exact_ratios(A[rows], mA[rows].to(A.dtype), train.B, train.mB_f)
    n_train, n_features = train.values.shape
    # A last column at infinite distance for the padding of donor tables.
    ratio = torch.nn.functional.pad(ratio, (0, 1), value=torch.inf).view(-1)
    est = torch.empty(ei.shape, dtype=A.dtype, device=A.device)
    bucket = train.bucket[ej]
    for b, table in enumerate(train.tables):
        entries = torch.nonzero(bucket == b).flatten()
        if not len(entries):
            continue
        col = ej[entries]
        donors = table.index_select(0, train.slot[col])
        flat = (donors + local[entries, None] * (n_train + 1)).view(-1)
        dist = ratio.index_select(0, flat).view(donors.shape)
        near, where = _smallest(dist, min(k, table.shape[1]))
        chosen = donors.gather(1, where).clamp_(max=n_train - 1)
        flat = (chosen * n_features + col[:, None]).view(-1)
        values = train.values.view(-1).index_select(0, flat).view(chosen.shape)
        value = _neighbour_mean(near, torch.isfinite(near), values, weights)
        est[entries] = torch.where(torch.isnan(value), train.col_mean[col], value)
    return est


def _smallest(dist, k):
    """The ``k`` smallest entries of each row and their columns, ties to the left.

    ``torch.topk`` breaks ties between equal distances differently depending
    on the shape of the batch, so a row's neighbours (and its completion)
    could change with the other rows transformed alongside it. Here the
    ``k``-th smallest value is taken from ``topk`` (values are unambiguous)
    and, among entries equal to it, the leftmost are kept: a row's choice
    depends on that row only. Columns come back in increasing order.
    """
    dist = torch.where(torch.isnan(dist), torch.inf, dist)  # NaN compares as nothing
    kth = torch.topk(dist, k, dim=1, largest=False).values[:, -1:]
    below = dist < kth
    tie = dist == kth
    room = k - below.sum(1, keepdim=True)
    chosen = below | (tie & (tie.cumsum(1) <= room))
    where = torch.nonzero(chosen)[:, 1].view(-1, k)
    return dist.gather(1, where), where


def _neighbour_mean(ratio, selected, values, weights):
    """Uniform or ``1 / d`` weighted mean of the selected neighbours (last dim).

    ``ratio`` is the squared distance up to a constant factor, which cancels
    in the normalised weights. As in scikit-learn, neighbours at distance 0
    take all the weight when there are any. NaN where none is selected.
    """
    if weights == "uniform":
        w = selected.to(values.dtype)
    else:
        zero = selected & (ratio == 0)
        inverse = torch.where(selected & (ratio > 0), ratio.rsqrt(), 0.0)
        w = torch.where(zero.any(-1, keepdim=True), zero.to(values.dtype), inverse)
    return (w * values).sum(-1) / w.sum(-1)
