"""The parameters of :class:`~sklearn_mc.SGDMFImputer`'s biased factorisation.

``X[i, j] ≈ U[i] · V[j] + mu + b[i] + c[j]`` (Funk-SVD / biased matrix
factorisation, Koren, Bell and Volinsky, "Matrix factorization techniques for
recommender systems", 2009): :class:`_Factors` holds the parameters, their
per-entry loss and the spectral start; the sparse COO helpers build the
sample matrix of the observed entries without copies; :func:`_fold_in_rows`
is the fold-in of new rows that ``transform`` runs.
"""

from __future__ import annotations

import numpy as np
import torch

from ._linalg import low_rank_svd, masked_gram, solve_spd
from ._observed import index_dtype
from ._torch import to_numpy, to_tensor
from .model_selection import split_indices

#: batch size of ``batch_size="auto"``: full batch up to this many observed
#: entries (exact, noise-free steps), mini-batches of this size beyond it.
_AUTO_BATCH = 65536
#: standard deviation of the random part of the initial factors (in the
#: scaled units of the data); small, so the fit starts near zero but off the
#: saddle point U = V = 0.
_INIT_STD = 1e-2

#: residuals below this fraction of the data's magnitude are rounding noise.
_NEGLIGIBLE = 1e-12
#: entries per block of rows folded in by :meth:`SGDMFImputer.transform`
#: (bounds the dense temporaries of the batched ridge solve to ~32 MB each).
_FOLD_IN_ENTRIES = 2**22


class _Factors:
    """Parameters of the biased factorisation, optionally rescaled for SGD.

    For plain SGD on the mean loss, the curvature felt by a row factor is about
    ``1 / n_rows`` of that felt by the predictions, so a size-independent step
    needs row parameters stored divided by ``sqrt(n_rows)`` (columns likewise);
    Adam and RMSprop are invariant to such rescaling and use scale 1.
    """

    def __init__(self, pu, pv, mu, pb, pc, su, sv, biases):
        self.pu, self.pv, self.mu, self.pb, self.pc = pu, pv, mu, pb, pc
        self.su, self.sv, self.biases = su, sv, biases

    @classmethod
    def initialise(
        cls, rows, cols, vals, shape, rank, biases, init, rescale, device, dtype, gen
    ):
        n_rows, n_cols = shape
        mu = torch.zeros((), dtype=dtype, device=device)
        residual = vals
        if biases and vals.numel() > 0:
            mu = vals.mean()
            residual = vals - mu
        noise = torch.randn((n_rows + n_cols, rank), generator=gen, dtype=dtype)
        noise = _INIT_STD * noise.to(device)
        # Rows and columns without training entries never get a gradient: they
        # start (and stay) at zero, so their completion is the biases alone.
        seen = torch.cat(
            [
                torch.bincount(rows, minlength=n_rows),
                torch.bincount(cols, minlength=n_cols),
            ]
        )
        noise *= (seen > 0).to(dtype)[:, None]
        U, V = noise[:n_rows], noise[n_rows:]
        if init == "spectral":
            U0, V0 = _spectral(
                *_on_sparse_device(rows, cols, residual), shape, rank, gen
            )
            U, V = U + U0.to(device), V + V0.to(device)
        su = float(np.sqrt(n_rows)) if rescale else 1.0
        sv = float(np.sqrt(n_cols)) if rescale else 1.0
        pb = torch.zeros(n_rows, dtype=dtype, device=device)
        pc = torch.zeros(n_cols, dtype=dtype, device=device)
        params = [U / su, V / sv, mu, pb, pc]
        params = [p.clone().requires_grad_(True) for p in params]
        if not biases:
            for p in params[2:]:
                p.requires_grad_(False)
        return cls(*params, su, sv, biases)

    def entry_loss(self, rows, cols, vals, alpha):
        """Squared error plus the penalty ``alpha`` of each entry's factors."""
        u, w, pred = self.predict(rows, cols)
        loss = (vals - pred).square()
        if alpha > 0:
            penalty = u.square().sum(1) + w.square().sum(1)
            if self.biases:
                penalty = penalty + self.row_bias(rows).square()
                penalty = penalty + self.col_bias(cols).square()
            loss = loss + alpha * penalty
        return loss

    @torch.no_grad()
    def objective(self, rows, cols, vals, alpha=0.0):
        """Mean of :meth:`entry_loss` over the given entries, in bounded chunks."""
        total = 0.0
        for start in range(0, vals.numel(), _AUTO_BATCH):
            part = slice(start, start + _AUTO_BATCH)
            loss = self.entry_loss(rows[part], cols[part], vals[part], alpha)
            total += float(loss.sum())
        return total / max(vals.numel(), 1)

    def zero_factors(self):
        with torch.no_grad():
            self.pu.zero_()
            self.pv.zero_()

    def residual(self, rows, cols, vals):
        """Observed values minus the initial global offset."""
        return vals - self.mu.detach() if self.biases else vals

    def parameters(self):
        return [self.pu, self.pv, self.mu, self.pb, self.pc]

    def row_bias(self, r):
        return _scaled(self.pb[r], self.su)

    def col_bias(self, c):
        return _scaled(self.pc[c], self.sv)

    def predict(self, r, c):
        u = _scaled(self.pu[r], self.su)
        w = _scaled(self.pv[c], self.sv)
        pred = (u * w).sum(1)
        if self.biases:
            pred = pred + self.mu + self.row_bias(r) + self.col_bias(c)
        return u, w, pred

    def export(self):
        return (
            (self.pu * self.su).detach(),
            (self.pv * self.sv).detach(),
            self.mu.detach(),
            (self.pb * self.su).detach(),
            (self.pc * self.sv).detach(),
        )


def _scaled(x, scale):
    """``x * scale``; ``x`` itself for a scale of 1 (Adam, RMSprop).

    ``x * 1.0`` is ``x`` bit for bit, in value and gradient, so the
    batch-sized copy (and its backward product) is skipped.
    """
    return x if scale == 1.0 else x * scale


def _on_sparse_device(*tensors):
    """The tensors, moved to the CPU where the device lacks sparse kernels (MPS)."""
    if tensors[0].device.type == "mps":
        return tuple(t.cpu() for t in tensors)
    return tensors


def _index_pair(rows, cols):
    """``torch.stack([rows, cols])``, or the (2, n) tensor they are the rows of."""
    n = rows.numel()
    if (
        rows.is_contiguous()
        and cols.is_contiguous()
        and rows.untyped_storage().data_ptr() == cols.untyped_storage().data_ptr()
        and rows.storage_offset() == 0
        and cols.storage_offset() == n
    ):
        return rows.as_strided((2, n), (n, 1))
    return torch.stack([rows, cols])


def _sparse_pair(rows, cols, vals, shape):
    """``(S, S.mH)`` of the entries as sparse COO tensors sharing ``vals``.

    Sorted row-major entries (the fit's own) are the coalesced layout; their
    int64 indices are built once as the rows ``[rows, cols, rows]`` of one
    (3, nnz) array, whose first two rows index ``S`` and last two ``S.mH``
    (the entries in ``S``'s order, as ``S.mH`` holds them, so the products
    are bit for bit those of ``S.mH``): two ``nnz``-long arrays less than
    ``S.mH``'s clone of the indices and values, with int32 ``rows`` and
    ``cols`` kept as they are. Other entries are coalesced first.
    """
    n = rows.numel()
    if not _sorted_unique(rows, cols):
        S = _sparse(rows, cols, vals, shape)
        return S, _transposed(S)
    index = torch.empty((3, n), dtype=torch.int64, device=rows.device)
    index[0].copy_(rows)
    index[1].copy_(cols)
    index[2].copy_(rows)
    coo = dict(check_invariants=False)
    S = torch.sparse_coo_tensor(index[:2], vals, shape, is_coalesced=True, **coo)
    St = torch.sparse_coo_tensor(
        index[1:], vals, tuple(shape)[::-1], is_coalesced=False, **coo
    )
    return S, St


def _sorted_unique(rows, cols):
    """Whether the entries are sorted by (row, column) without repeats."""
    ahead = rows[1:] > rows[:-1]
    return bool((ahead | ((rows[1:] == rows[:-1]) & (cols[1:] > cols[:-1]))).all())


def _sparse(rows, cols, vals, shape):
    """A coalesced sparse COO tensor of the entries.

    The observed entries come sorted row-major and unique, which is the
    coalesced layout: they are then flagged as such instead of being sorted
    again (``coalesce`` would copy the indices and values and sort them).
    The training entries' indices are already one (2, nnz) tensor, which is
    used without a copy. torch's invariant check is off: it allocates two
    ``nnz``-long int64 arrays, and the indices are the fit's own, in range
    by construction (validated with the input) and checked sorted here.
    """
    sorted_unique = _sorted_unique(rows, cols)
    S = torch.sparse_coo_tensor(
        _index_pair(rows.long(), cols.long()),
        vals,
        shape,
        check_invariants=False,
        is_coalesced=sorted_unique,
    )
    return S if sorted_unique else S.coalesce()


def _transposed(S):
    """``S.mH`` of a sparse COO matrix, sharing its values.

    ``S.mH`` clones the indices and the values; this copies only the indices
    (swapped, in ``S``'s order, as ``S.mH`` holds them), so that
    :func:`~sklearn_mc._linalg.low_rank_svd` gives the same result with one
    ``nnz``-long array less.
    """
    return torch.sparse_coo_tensor(
        S._indices().flip(0),
        S._values(),
        S.shape[::-1],
        check_invariants=False,
        is_coalesced=False,
    )


def _spectral(rows, cols, vals, shape, rank, generator):
    """Balanced factors of the top singular triplets of the rescaled sample.

    ``P_Ω(X) · n_rows·n_cols / nnz`` is an unbiased estimate of ``X`` under
    uniform sampling; its truncated SVD ``P S Qᵀ`` gives ``U = P S½``,
    ``V = Q S½``. The randomised SVD only multiplies the sparse matrix by thin
    dense ones.
    """
    n_rows, n_cols = shape
    nnz = vals.numel()
    if nnz == 0:
        zeros = torch.zeros(
            (n_rows + n_cols, rank), dtype=vals.dtype, device=vals.device
        )
        return zeros[:n_rows], zeros[n_rows:]
    sample, sample_t = _sparse_pair(rows, cols, vals * (n_rows * n_cols / nnz), shape)
    q = min(rank + 4, n_rows, n_cols)
    P, S, Q = low_rank_svd(sample, q, 4, generator, At=sample_t)
    del sample, sample_t
    P, S, Q = P[:, :rank], S[:rank], Q[:, :rank]
    # With few samples the noise inflates the singular values (the rescaled
    # sample is far from low rank): shrink them by the least-squares factor on
    # the observed entries, so the start never fits them worse than zero does.
    pred = ((P[rows] * S) * Q[cols]).sum(1)
    shrink = (vals @ pred) / (pred @ pred).clamp_min(torch.finfo(vals.dtype).tiny)
    root = (S * shrink).clamp_min(0).sqrt()
    return P * root, Q * root


def _hold_out(rows, cols, vals, shape, early_stopping, fraction, seed):
    """The training entries and the held-out ones (None without any).

    The package's hold-out rule (``split_indices`` on the row-major entries).
    The training indices are the two rows of one (2, n) tensor, int32 where
    ``shape`` allows (:func:`~sklearn_mc._observed.index_dtype`).
    """
    n = rows.numel()
    if early_stopping:
        kept, held = split_indices(n, fraction, seed)
    else:
        kept, held = np.arange(n), np.empty(0, dtype=np.int64)
    kept = torch.as_tensor(kept, device=rows.device)
    # int32 where the shape allows (half the memory; indexing gives the same
    # values); the sparse products build their int64 indices when they run.
    dtype = _INDEX_DTYPES[index_dtype(shape)]
    index = torch.empty((2, kept.numel()), dtype=dtype, device=rows.device)
    for side, idx in zip(index, (rows, cols), strict=True):
        if idx.dtype == dtype:
            torch.index_select(idx, 0, kept, out=side)
        else:
            side.copy_(idx[kept])
    training = index[0], index[1], vals[kept]
    if held.size == 0:
        return training, None
    held = torch.as_tensor(held, device=rows.device)
    return training, (rows[held].to(dtype), cols[held].to(dtype), vals[held])


_INDEX_DTYPES = {np.dtype(np.int32): torch.int32, np.dtype(np.int64): torch.int64}


def _nothing_to_fit(model, vals):
    """Whether the offset alone fits every value, up to rounding.

    ``max |v - offset|`` and ``max |v|`` from the extremes (subtraction is
    monotone, so this is the same number, without entry-sized copies).
    """
    lo, hi = vals.aminmax() if vals.numel() else (vals.new_zeros(()),) * 2
    residual = torch.maximum(
        model.residual(None, None, lo).abs(), model.residual(None, None, hi).abs()
    )
    top = torch.maximum(lo.abs(), hi.abs())
    return float(residual) <= _NEGLIGIBLE * max(1.0, float(top))


def _fold_in_rows(X, mask, V, mu, c, biases, alpha):
    """The scaled completion of the rows of ``X`` with the fitted ``V``, ``mu``, ``c``.

    Rows are folded in by :func:`_fold_in` in blocks of about
    ``_FOLD_IN_ENTRIES`` entries, on the device and in the dtype of ``V``.
    """
    device = V.device
    dtype = V.dtype
    blocks = []
    step = max(1, _FOLD_IN_ENTRIES // max(X.shape[1], 1))
    for start in range(0, X.shape[0], step):
        stop = start + step
        X_block = to_tensor(X[start:stop], device, dtype)
        M_block = to_tensor(mask[start:stop], device).to(dtype)
        blocks.append(to_numpy(_fold_in(X_block, M_block, V, mu, c, biases, alpha)))
    return np.concatenate(blocks, axis=0)


def _fold_in(X, M, V, mu, c, biases, alpha):
    """Ridge solve of every row's factor (and bias) with V fixed."""
    Z = torch.cat([V, torch.ones_like(V[:, :1])], 1) if biases else V
    Y = torch.where(M > 0, X - mu - c, 0.0)
    gram = masked_gram(M, Z)
    diagonal = gram.diagonal(dim1=1, dim2=2)
    # alpha·|O| as in the objective, plus a tiny relative ridge.
    eps = torch.finfo(Z.dtype).eps ** 0.5
    ridge = alpha * M.sum(1) + eps * (diagonal.mean(1) + 1.0)
    diagonal.add_(ridge[:, None])
    sol = solve_spd(gram, Y @ Z)
    out = torch.addmm(c + mu, sol[:, : V.shape[1]], V.T)
    if biases:
        out += sol[:, -1:]
    return out
