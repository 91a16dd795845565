"""Neighbour search over rows for :class:`~sklearn_mc.KNNImputer`.

Distances are scikit-learn's nan-euclidean ones, ``sqrt(S / n_common *
n_features)`` with ``S`` the sum of squared differences over the common
coordinates, computed per (row, donor) pair by a fixed rule (see
:func:`pair_sums`), so that a pair's distance never depends on the other rows
of the batch or on chunking. Among equally distant donors the choice is
scikit-learn's: ``np.argpartition`` over the donors of the column, called on
the same distance row scikit-learn builds. Rows whose distances are exact
on a grid (integer tables) are searched by :mod:`sklearn_mc._knn_grid`.
"""

from __future__ import annotations

import numpy as np
import sklearn
import torch

from ._torch import to_numpy, to_tensor

# Candidates per row: ``1.5 k / observed-fraction`` plus this margin, so that
# nearly every entry finds its k donors among them (the rest fall back to an
# exact search); each candidate costs n_features work per row.
EXTRA_CANDIDATES = 8
# Rows per chunk are also capped so that a chunk's temporaries stay near this
# size: the many elementwise passes then run in cache.
CACHE_BYTES = 2**24
# Unit roundoff of float64.
_U = 2.0**-53


def chunk_size(values_per_row: int, n_rows: int, budget: int | None = None) -> int:
    """Rows per chunk so that ``rows × values_per_row`` float64 fit in memory."""
    if budget is None:
        budget = sklearn.get_config()["working_memory"] * 2**20
    return int(max(1, min(n_rows, budget // (8 * max(values_per_row, 1)))))


def pick_search(fit_mask: np.ndarray, n_cand: int, exact_fraction: float = 1.0) -> str:
    """``"candidates"`` or ``"donors"``, whichever the cost model says is faster.

    Per receiver row, in rough CPU nanoseconds: the candidate search costs a
    float32 product over ``4 n_features`` per training row plus work per
    candidate and per (missing entry, candidate); the direct donor search a
    float64 product (rows whose Gram sums are exact, ``exact_fraction``) or
    a sum per common coordinate (the others), plus work per (missing entry,
    donor).
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
    distance = exact_fraction * product / 25 + (1 - exact_fraction) * 4 * (
        n_train * n_features * observed
    )
    donors = distance + 4 * (n_donors * (1 - n_donors / n_train)).sum()
    return "candidates" if candidates <= donors else "donors"


#: values per block of the lower bounds here and of the exponent scans of
#: :mod:`sklearn_mc._knn_grid` (bounded temporaries)
_BLOCK = 2**18


# --------------------------------------------------------------- distances
class Train:
    """Training rows on the device, and each column's donors in buckets.

    ``X``: values (0 where missing); ``mB``: mask. Columns are grouped by
    their number of donors ``d`` (buckets ``2^(b-1) < d <= 2^b``); a
    bucket's table lists each column's donor rows in increasing order,
    padded with ``n_train``, so that donor searches run per bucket rather
    than per column, with at most 2x padding.
    """

    def __init__(self, fit_X, fit_mask, col_mean, train_grid, device, dtype):
        n_train, n_features = fit_mask.shape
        self.shape = (n_train, n_features)
        self.X = to_tensor(np.where(fit_mask, fit_X, 0.0), device, dtype)
        self.mB = to_tensor(fit_mask, device)
        self.col_mean = to_tensor(col_mean, device, dtype)
        self.grid = train_grid
        self._gram = None  # float mask and squares, built when first needed
        self._transposed = None
        n_donors = fit_mask.sum(0)
        self.n_donors_np = n_donors
        self.n_donors = to_tensor(n_donors, device)
        # Expected padded donors over a row's missing entries (memory bound).
        self.gather_per_row = int(2 * (n_donors * (1 - n_donors / n_train)).sum())
        self._fit_mask, self._device = fit_mask, device
        self._tables = None  # built when a donor search first needs them
        self._donor_lists: dict[int, np.ndarray] = {}

    def _build_tables(self):
        n_train, n_features = self.shape
        fit_mask, n_donors = self._fit_mask, self.n_donors_np
        bucket = np.ceil(np.log2(n_donors)).astype(np.int64)
        slot = np.zeros(n_features, dtype=np.int64)
        tables = []
        for b in np.unique(bucket):
            cols = np.flatnonzero(bucket == b)
            slot[cols] = np.arange(len(cols))
            col, row = np.nonzero(fit_mask[:, cols].T)
            first = np.concatenate([[0], np.cumsum(n_donors[cols])[:-1]])
            table = np.full((len(cols), n_donors[cols].max()), n_train)
            table[col, np.arange(len(col)) - first[col]] = row
            tables.append(to_tensor(table, self._device))
        bucket = np.searchsorted(np.unique(bucket), bucket)
        self._tables = (
            tables,
            to_tensor(bucket, self._device),
            to_tensor(slot, self._device),
        )

    @property
    def tables(self):
        """Per bucket, the columns' donor rows (padded with ``n_train``)."""
        if self._tables is None:
            self._build_tables()
        return self._tables[0]

    @property
    def bucket(self):
        """Each column's bucket."""
        if self._tables is None:
            self._build_tables()
        return self._tables[1]

    @property
    def slot(self):
        """Each column's row in its bucket's table."""
        if self._tables is None:
            self._build_tables()
        return self._tables[2]

    def gram_parts(self):
        """The mask as floats and the squared values (built once)."""
        if self._gram is None:
            self._gram = (self.mB.to(self.X.dtype), self.X * self.X)
        return self._gram

    def transposed(self):
        """``X.T`` and ``mB.T``, contiguous (built once)."""
        if self._transposed is None:
            self._transposed = (self.X.T.contiguous(), self.mB.T.contiguous())
        return self._transposed

    def donor_list(self, col: int) -> np.ndarray:
        """The donor rows of one column, increasing (NumPy, cached)."""
        if col not in self._donor_lists:
            self._donor_lists[col] = np.flatnonzero(self._fit_mask[:, col])
        return self._donor_lists[col]


def pair_sums(A, mA, train, donors=None):
    """``S`` and ``n_common`` of each row with each of its donors, by a fixed rule.

    ``S`` is the sum of ``(a_f - b_f)²`` over the common coordinates ``f``,
    added one at a time in increasing ``f`` (each term, each sum correctly
    rounded; the other coordinates add an exact 0): the value of a pair is a
    function of that pair alone, whatever the batch, the chunk or the number
    of donors asked for. ``donors`` is ``(n_rows, m)`` training row indices,
    or None for every training row.
    """
    n_rows, n_features = A.shape
    n_train = train.shape[0]
    m = n_train if donors is None else donors.shape[1]
    S = torch.zeros((n_rows, m), dtype=A.dtype, device=A.device)
    count = torch.zeros((n_rows, m), dtype=torch.int32, device=A.device)
    if n_rows == 0 or m == 0:
        return S, count
    width = int(mA.sum(1).max())
    block = max(1, CACHE_BYTES // (24 * n_rows * m))
    if donors is not None and width < n_features // 2:
        # Sparse rows: only the coordinates a row observes, in increasing
        # order, can be common.
        obs = torch.argsort((~mA).to(torch.int8), dim=1, stable=True)[:, :width]
        in_row = mA.gather(1, obs).T.contiguous()  # (width, n_rows)
        a = A.gather(1, obs).T.contiguous()
        base = donors * n_features
        values, observed = train.X.view(-1), train.mB.view(-1)
        for lo in range(0, width, block):
            hi = min(width, lo + block)
            flat = (base[None, :, :] + obs.T[lo:hi, :, None]).reshape(-1)
            shape = (hi - lo, n_rows, m)
            common = observed.index_select(0, flat).view(shape)
            common.logical_and_(in_row[lo:hi, :, None])
            diff = values.index_select(0, flat).view(shape).sub_(a[lo:hi, :, None])
            _add_in_order(S, count, diff.mul_(diff).masked_fill_(~common, 0.0), common)
        return S, count
    if donors is not None:
        # Whole training rows gathered (contiguous), then the additions in
        # increasing coordinate on the transposed squares.
        flat = donors.reshape(-1)
        shape = (n_rows, m, n_features)
        common = train.mB.index_select(0, flat).view(shape)
        common.logical_and_(mA[:, None, :])
        diff = train.X.index_select(0, flat).view(shape).sub_(A[:, None, :])
        sq = diff.mul_(diff).masked_fill_(~common, 0.0)
        _add_in_order(S, count, sq.view(-1, n_features).T.contiguous(), common, -1)
        return S, count
    At, mAt = A.T, mA.T
    Xt, mBt = train.transposed()
    for lo in range(0, n_features, block):
        hi = min(n_features, lo + block)
        common = mBt[lo:hi, None, :] & mAt[lo:hi, :, None]
        diff = Xt[lo:hi, None, :] - At[lo:hi, :, None]
        _add_in_order(S, count, diff.mul_(diff).masked_fill_(~common, 0.0), common)
    return S, count


def _add_in_order(S, count, sq, common, dim=0):
    """``S += Σ_s sq[s]`` one ``s`` at a time; ``count += common.sum(dim)``."""
    flat = S.view(-1) if sq.dim() == 2 else S
    for s in range(sq.shape[0]):
        flat.add_(sq[s])
    count.add_(common.sum(dim, dtype=torch.int32))


def gram_sums(A, mA, train):
    """``S`` and ``n_common`` to every training row by the Gram form.

    Exact (hence equal to :func:`pair_sums`) for rows that
    :func:`~sklearn_mc._knn_grid.rows_on_grid` accepts; cheaper for many
    donors.
    """
    mA_f = mA.to(A.dtype)
    mB, B2 = train.gram_parts()
    S = (A * A) @ mB.T
    S.add_(mA_f @ B2.T).sub_(2 * A @ train.X.T)
    count = (mA_f @ mB.T).round_().to(torch.int32)
    return S.clamp_(min=0), count


def distances(S, count, n_features_in):
    """scikit-learn's nan-euclidean distance, ``sqrt(S / count * p)``; NaN if none."""
    d = S.div(count).mul_(n_features_in).sqrt_()
    return d.masked_fill_(count == 0, torch.nan)


def full_distances(A, mA, exact, train, n_features_in):
    """Distances of rows to every training row (NaN where undefined)."""
    n_rows = A.shape[0]
    n_train = train.shape[0]
    S = torch.empty((n_rows, n_train), dtype=A.dtype, device=A.device)
    count = torch.empty((n_rows, n_train), dtype=torch.int32, device=A.device)
    idx = torch.nonzero(exact).flatten()
    if len(idx):
        S[idx], count[idx] = gram_sums(A[idx], mA[idx], train)
    idx = torch.nonzero(~exact).flatten()
    if len(idx):
        S[idx], count[idx] = pair_sums(A[idx], mA[idx], train)
    return distances(S, count, n_features_in)


# ------------------------------------------------------------ lower bounds
class LowerBounds:
    """Float32 lower bounds of the nan-euclidean ratios ``S / n_common``, for ranking.

    Computed from the training values centred by the column means and scaled
    by a power of two (at most 1 in magnitude). For inputs rounded to float32
    and any summation order, a length-K dot product errs by at most
    ``γ_K Σ|x y|`` with ``γ_K = K u / (1 - K u)`` (Higham, Accuracy and
    Stability of Numerical Algorithms, 3.1). Here ``Σ|x y| ≤ 2 (‖a‖² +
    ‖b‖²)``, so ``err · (‖a‖² + ‖b‖²)`` with ``err = 4 γ`` (plus the float64
    centring error, ``8 u64``) is subtracted (folded into the product for
    ``‖b‖²``); underflow costs at most ``K · 2⁻¹²⁶`` per pair. The final
    subtraction and division round by at most ``2u`` relatively, which
    :meth:`threshold` accounts for.
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
        self.err = 4 * K * u / (1 - K * u) + 8 * _U
        self.tiny = K * 2.0**-120
        # Filled block by block: float64 temporaries of one block at a time.
        p = n_features
        right = torch.empty((3 * p + 1, B.shape[0]), dtype=self.dtype, device=B.device)
        right[:p] = mB.T
        step = max(1, _BLOCK // max(p, 1))
        for lo in range(0, B.shape[0], step):
            block = B[lo : lo + step]
            square = block * block
            right[p : 2 * p, lo : lo + step] = square.T
            right[2 * p : 3 * p, lo : lo + step] = (-2 * block).T
            right[3 * p, lo : lo + step] = square.sum(1).mul_(-self.err)
        self.right = right
        self.mB = right[:p]

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


# ---------------------------------------------------------------- averages
def donor_mean(valid, dist, values, weights):
    """Uniform or ``1 / d`` weighted mean over the last dim, added in order.

    As in scikit-learn, donors at distance 0 take all the weight when there
    are any, and donors at an undefined distance count for nothing. The
    terms are added one at a time in the order given (callers pass donors in
    increasing index), so the result does not depend on the batch. NaN where
    no donor counts.
    """
    dtype = values.dtype
    if weights == "uniform":
        w = valid.to(dtype)
    else:
        zero = valid & (dist == 0)
        inverse = torch.where(valid & (dist > 0), 1.0 / dist, 0.0)
        w = torch.where(zero.any(-1, keepdim=True), zero.to(dtype), inverse)
    v = torch.where(valid, values, 0.0)
    num = torch.zeros(values.shape[:-1], dtype=dtype, device=values.device)
    den = torch.zeros_like(num)
    for s in range(values.shape[-1]):
        num.add_(w[..., s] * v[..., s])
        den.add_(w[..., s])
    return num / den


# ------------------------------------------------------- candidate search
def impute_candidates(A, mA, A_c, train, bounds, inv_scale2, n_cand, k, weights, p):
    """Impute a chunk's missing entries from its candidate neighbours.

    ``A`` holds the rows' values (0 where missing), ``A_c`` the same centred
    and scaled as the bounds' training rows (``inv_scale2`` undoes the scale
    on ratios). Returns the entries (row in chunk, column), their estimates
    and which of them must be redone by :func:`impute_exact`: those whose
    ``k``-th donor is not provably nearer than every non-candidate, and
    those with a tie at the ``k``-th donor between donors of different
    values (scikit-learn's tie rule needs every donor's distance).
    """
    n_rows = A.shape[0]
    n_train, n_features = train.shape
    lower = bounds(A_c, mA.to(A_c.dtype))
    all_candidates = n_cand >= n_train
    if not all_candidates:
        low, cand = torch.topk(lower, n_cand + 1, dim=1, largest=False)
        ratio = bounds.threshold(low[:, n_cand]).to(A.dtype) * inv_scale2
        # A distance whose ratio is at least ``ratio`` (up to the rounding of
        # the sums, square root and products, well within the margin).
        margin = 1 - (2 * n_features + 64) * _U
        d_thr = ratio.clamp(min=0).mul_(p).sqrt_().mul_(margin)
        cand = cand[:, :n_cand]
    else:
        cand = torch.arange(n_train, device=A.device).expand(n_rows, n_train)
        d_thr = torch.full((n_rows,), torch.inf, dtype=A.dtype, device=A.device)
    del lower
    # Canonical order: by distance, then by donor index.
    cand = torch.sort(cand, dim=1).values
    S, count = pair_sums(A, mA, train, cand)
    dist = distances(S, count, p).nan_to_num_(nan=torch.inf)
    ei, ej, est, uncertain, ambiguous = _select(
        dist, cand, mA, train, d_thr, all_candidates, k, weights
    )
    return ei, ej, est, uncertain | ambiguous


def _select(dist, cand, mA, train, d_thr, all_candidates, k, weights):
    """Each missing entry's estimate from the candidates' distances.

    ``cand`` (rows × m, increasing) and ``dist`` (inf where undefined) are a
    row's candidate donors; ``d_thr`` is a lower bound of the distance of
    every non-candidate. Returns the entries (row, column) of the missing
    values, their estimates, which are uncertain (the ``k``-th donor not
    provably nearer than every non-candidate) and which are ambiguous (tied
    at the ``k``-th donor with a donor of a different value).
    """
    n_train, n_features = train.shape
    mB = train.mB
    dist, order = torch.sort(dist, dim=1, stable=True)
    cand = cand.gather(1, order)

    # Per missing entry: the first k' = min(k, donors) candidates observing
    # its column, and the next one.
    ei, ej = torch.nonzero(~mA, as_tuple=True)
    dist_e = dist.index_select(0, ei)
    cand_e = cand.index_select(0, ei)
    flat = (cand_e * n_features).add_(ej[:, None])
    flat = flat.view(-1)
    eligible = mB.view(-1).index_select(0, flat).view(dist_e.shape)
    eligible.logical_and_(torch.isfinite(dist_e))
    rank = eligible.cumsum(1, dtype=torch.int32)
    kk = train.n_donors[ej].clamp(max=k)[:, None]
    selected = eligible & (rank <= kk)
    found = selected.sum(1)
    kth = torch.where(selected, dist_e, -torch.inf).amax(1)
    nxt = torch.where(eligible & (rank == kk + 1), dist_e, torch.inf).amin(1)
    values = train.X.view(-1).index_select(0, flat).view(dist_e.shape)
    tied = eligible & (dist_e == kth[:, None])
    spread = torch.where(tied, values, -torch.inf).amax(1) - torch.where(
        tied, values, torch.inf
    ).amin(1)
    ambiguous = (nxt == kth) & torch.isfinite(kth) & (spread != 0)
    thr = d_thr.index_select(0, ei)
    certified = (
        torch.tensor(all_candidates, device=dist.device)
        | (found == train.n_donors[ej])
        | ((found == kk[:, 0]) & (kth < thr))
    )

    # The selected donors in increasing index.
    width = min(k, cand_e.shape[1])
    key = torch.where(selected, cand_e, n_train)
    key, pos = torch.sort(key, dim=1)
    key, pos = key[:, :width], pos[:, :width]
    est = donor_mean(
        key < n_train, dist_e.gather(1, pos), values.gather(1, pos), weights
    )
    est = torch.where(found > 0, est, train.col_mean[ej])
    return ei, ej, est, ~certified, ambiguous


# ----------------------------------------------------------- exact search
def smallest(dist, k):
    """The ``k`` smallest entries of each row and their columns, ties to the left.

    ``torch.topk`` breaks ties between equal distances differently depending
    on the shape of the batch; here the ``k``-th smallest value is taken from
    ``topk`` (values are unambiguous) and, among entries equal to it, the
    leftmost are kept. Columns come back in increasing order. Also returns
    the ``k``-th smallest value, which entries equal it and whether more of
    them exist than were kept: where such a tie matters (tied donors of
    different values), callers replace the choice by scikit-learn's
    (:func:`_argpartition_rule`).
    """
    dist = torch.where(torch.isnan(dist), torch.inf, dist)  # NaN compares as nothing
    kth = torch.topk(dist, k, dim=1, largest=False).values[:, -1:]
    below = dist < kth
    tie = dist == kth
    room = k - below.sum(1, keepdim=True)
    cum = tie.cumsum(1)
    chosen = below | (tie & (cum <= room))
    where = torch.nonzero(chosen)[:, 1].view(-1, k)
    overflow = (cum[:, -1:] > room).flatten()
    return dist.gather(1, where), where, kth[:, 0], tie, overflow


def impute_exact(A, mA, exact, train, ei, ej, k, weights, p):
    """Entries ``(ei, ej)`` from the distances to every training row.

    Ties at the ``k``-th donor between donors of different values are
    resolved as scikit-learn does: ``np.argpartition`` of the row of
    distances to the column's donors.
    """
    rows, local = torch.unique(ei, return_inverse=True)
    dist_full = full_distances(A[rows], mA[rows], exact[rows], train, p)
    return select_exact(dist_full, local, ej, train, k, weights)


def select_exact(dist_full, local, ej, train, k, weights, budget=None):
    """Entries (row ``local`` of ``dist_full``, column ``ej``) over all donors.

    ``dist_full`` holds the rows' distances to every training row (NaN where
    undefined). With ``budget`` (bytes), entries are taken in batches whose
    gathered donor distances and their temporaries stay within it.
    """
    if budget is None or not len(ej):
        return _select_exact(dist_full, local, ej, train, k, weights)
    est = torch.empty(ej.shape, dtype=dist_full.dtype, device=dist_full.device)
    batch = max(1, budget // (40 * max(int(train.n_donors_np.max()), 1)))
    for lo in range(0, len(ej), batch):
        sl = slice(lo, lo + batch)
        est[sl] = _select_exact(dist_full, local[sl], ej[sl], train, k, weights)
    return est


def _select_exact(dist_full, local, ej, train, k, weights):
    n_train, n_features = train.shape
    # A last column at infinite distance for the padding of donor tables.
    padded = torch.nn.functional.pad(dist_full, (0, 1), value=torch.nan).view(-1)
    est = torch.empty(ej.shape, dtype=dist_full.dtype, device=dist_full.device)
    bucket = train.bucket[ej]
    retry = []
    for b, table in enumerate(train.tables):
        entries = torch.nonzero(bucket == b).flatten()
        if not len(entries):
            continue
        col = ej[entries]
        donors = table.index_select(0, train.slot[col])
        flat = (donors + local[entries, None] * (n_train + 1)).view(-1)
        dist = padded.index_select(0, flat).view(donors.shape)
        kb = min(k, table.shape[1])
        near, where, kth, tie, overflow = smallest(dist, kb)
        chosen = donors.gather(1, where).clamp_(max=n_train - 1)
        values = train.X.view(-1)[(chosen * n_features + col[:, None]).view(-1)]
        values = values.view(chosen.shape)
        valid = torch.isfinite(near)
        value = donor_mean(valid, near, values, weights)
        est[entries] = torch.where(torch.isnan(value), train.col_mean[col], value)
        # A tie at the k-th donor (a finite one) matters only between
        # donors of different values.
        kth_finite = torch.isfinite(kth) & (kb < train.n_donors[col])
        check = torch.nonzero(overflow & kth_finite).flatten()
        if len(check):
            tied_donors = donors[check].clamp(max=n_train - 1)
            tied_values = train.X.view(-1)[tied_donors * n_features + col[check, None]]
            t = tie[check]
            spread = torch.where(t, tied_values, -torch.inf).amax(1) - torch.where(
                t, tied_values, torch.inf
            ).amin(1)
            retry.append(entries[check[spread != 0]])
    if retry:
        retry = torch.cat(retry)
        if len(retry):
            est[retry] = _argpartition_rule(
                dist_full, local[retry], ej[retry], train, k, weights
            )
    return est


def _argpartition_rule(dist_full, local, cols, train, k, weights):
    """scikit-learn's choice: ``np.argpartition`` over each column's donors.

    The row passed is the one scikit-learn builds: the distances (NaN where
    undefined) to the column's donors in increasing row order.
    """
    dist_np = to_numpy(dist_full)
    cols_np, local_np = to_numpy(cols), to_numpy(local)
    order = np.argsort(cols_np, kind="stable")
    sorted_cols = cols_np[order]
    starts = np.flatnonzero(np.r_[True, sorted_cols[1:] != sorted_cols[:-1]])
    ends = np.r_[starts[1:], len(order)]
    pick = np.full((len(cols_np), k), -1, dtype=np.int64)
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        at = order[lo:hi]
        donors = train.donor_list(int(sorted_cols[lo]))
        kk = min(k, len(donors))
        # One call over the receivers of the column, as scikit-learn makes
        # (each row is partitioned on its own, so batching does not matter).
        rows = dist_np[local_np[at]].take(donors, axis=1)
        chosen = np.argpartition(rows, kk - 1, axis=1)[:, :kk]
        pick[at, :kk] = np.sort(donors[chosen], axis=1)
    valid = pick >= 0
    pick = np.where(valid, pick, 0)
    near = np.where(valid, dist_np[local_np[:, None], pick], np.nan)
    values = to_numpy(train.X)[pick, cols_np[:, None]]
    est = donor_mean(
        torch.as_tensor(np.isfinite(near)),
        torch.as_tensor(near),
        torch.as_tensor(values),
        weights,
    )
    return est.to(device=dist_full.device, dtype=dist_full.dtype)
