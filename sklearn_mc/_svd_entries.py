"""Observed entries of the SVD solvers, and their held-out folds.

One layout of the entries at a time (:class:`_Entries`: row-major values with
CSR views of both sides), the blocks of rows that bound the batched solves'
memory, and the held-out folds of the rank search and the ridge selection.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ._observed import trim_heap as _trim_heap
from ._torch import to_tensor
from .model_selection import split_indices

# Share of the observed entries held out to choose the rank and the ridge.
_VALIDATION_FRACTION = 0.1
# Below this many observed entries the held-out error is averaged over
# _N_FOLDS disjoint held-out sets (one set of a few dozen entries is too noisy
# to choose a rank by).
_SMALL_NNZ = 2_000
_N_FOLDS = 5
# Entries per chunk of the element-wise passes and of the Gram products:
# their temporaries stay below 8 MB (float64) whatever the number of entries.
_CHUNK = 2**20


class _Entries:
    """Observed entries, row-major, with sparse (CSR) layouts of both sides.

    Holds 20 bytes per entry (float64): the values, the row-major column
    index, and the column-major order and row index (int32 indices where they
    fit), plus the two index pointers. The rows of the entries are not kept
    (the row pointer has them); the sparsity pattern is a CSR view with an
    expanded (zero-byte) tensor of ones.
    """

    def __init__(self, rows, cols, values, shape, device, dtype):
        rows = np.asarray(rows)
        cols = np.asarray(cols)
        values = np.asarray(values)
        rows, cols, values = _row_major(rows, cols, values)
        m, n = shape
        self.shape = (int(m), int(n))
        self.device, self.dtype = device, dtype
        self.nnz = int(rows.size)
        fits = max(m, n, self.nnz) < 2**31 - 1
        index_np = np.int32 if fits else np.int64
        self._index_dtype = torch.int32 if fits else torch.int64
        self.values = to_tensor(values, device, dtype)
        self.cols = torch.as_tensor(cols.astype(index_np), device=device)
        self._row_ptr = _compressed(rows, m, device, self._index_dtype)
        t_order = np.argsort(cols, kind="stable")
        self._t_index = torch.as_tensor(rows[t_order].astype(index_np), device=device)
        self._t_order = torch.as_tensor(t_order.astype(index_np), device=device)
        del t_order
        self._col_ptr = _compressed(cols, n, device, self._index_dtype)

    @property
    def rows(self):
        """Row of each entry (int64, computed from the row pointer)."""
        counts = (self._row_ptr[1:] - self._row_ptr[:-1]).long()
        positions = torch.arange(self.shape[0], device=self.device)
        return torch.repeat_interleave(positions, counts)

    def pattern(self, transpose=False):
        """The sparsity pattern as a CSR matrix of ones (no ``nnz`` array)."""
        ones = torch.ones(1, dtype=self.dtype, device=self.device).expand(self.nnz)
        return self._csr(ones, transpose)

    def matrix(self, values, transpose=False):
        """CSR matrix (or its transpose) holding ``values`` at the entries.

        ``values`` are in row-major order; the transpose gathers them into
        column-major order (a new array of ``nnz`` values).
        """
        if transpose:
            # index_select: indexing would first convert the int32 order to
            # an int64 copy (one more array of nnz indices)
            values = torch.index_select(values, 0, self._t_order)
        return self._csr(values, transpose)

    def side(self, transpose=False):
        """``(index pointer, indices, shape)`` of the CSR layout of the rows
        (or, transposed, of the columns)."""
        if transpose:
            return self._col_ptr, self._t_index, self.shape[::-1]
        return self._row_ptr, self.cols, self.shape

    def _csr(self, values, transpose):
        ptr, index, shape = self.side(transpose)
        return _csr(ptr, index, values, shape)

    def centred(self, c):
        """``values − c[cols]``, in chunks (one new array of ``nnz`` values)."""
        out = torch.empty_like(self.values)
        for start in range(0, self.nnz, _CHUNK):
            part = slice(start, start + _CHUNK)
            torch.sub(self.values[part], c[self.cols[part]], out=out[part])
        return out

    def fitted(self, U, V, c):
        """Model values ``u_i·v_j + c_j`` at the entries (no ``nnz × rank`` temp)."""
        if U.shape[1] == 0:
            return c[self.cols]
        out = torch.sparse.sampled_addmm(
            self.pattern(), U.contiguous(), V.T.contiguous(), beta=0.0
        ).values()
        for start in range(0, self.nnz, _CHUNK):
            part = slice(start, start + _CHUNK)
            out[part].add_(c[self.cols[part]])
        return out

    def residual(self, U, V, c):
        """``values − fitted`` (one array of ``nnz`` values, computed in place)."""
        return self.fitted(U, V, c).neg_().add_(self.values)


def _row_major(rows, cols, values):
    """The entries sorted by (row, column); unchanged (no copy) when they are."""
    if rows.size > 1:
        keys_sorted = np.all(
            (rows[1:] > rows[:-1]) | ((rows[1:] == rows[:-1]) & (cols[1:] > cols[:-1]))
        )
        if not keys_sorted:
            order = np.lexsort((cols, rows))
            rows, cols, values = rows[order], cols[order], values[order]
    return rows, cols, values


_CSR_WARNED = False


def _csr(ptr, index, values, shape):
    global _CSR_WARNED
    if _CSR_WARNED:
        return torch.sparse_csr_tensor(
            ptr, index, values, shape, check_invariants=False
        )
    with warnings.catch_warnings():
        # torch warns once per process that CSR support is beta.
        warnings.simplefilter("ignore", UserWarning)
        out = torch.sparse_csr_tensor(ptr, index, values, shape, check_invariants=False)
    _CSR_WARNED = True
    return out


def _compressed(sorted_index, size, device, dtype):
    counts = np.bincount(sorted_index, minlength=size)
    ptr = np.concatenate([[0], np.cumsum(counts)])
    return torch.as_tensor(ptr.astype(np.int64), device=device).to(dtype)


def _column_means(entries):
    n = entries.shape[1]
    counts = torch.bincount(entries.cols, minlength=n).to(entries.dtype)
    sums = torch.zeros(n, dtype=entries.dtype, device=entries.device).index_add_(
        0, entries.cols, entries.values
    )
    return sums / counts.clamp(min=1)


def _row_blocks(ptr, size, max_rows):
    """``(start, stop)`` blocks of rows: at most ``max_rows`` rows and (unless
    a single row has more) ``_CHUNK`` entries each."""
    if size <= max_rows and int(ptr[-1]) <= _CHUNK:
        return [(0, size)]
    bounds = ptr.long().cpu().numpy()
    blocks, start = [], 0
    while start < size:
        # the last row whose block stays within _CHUNK entries (at least one row)
        stop = int(np.searchsorted(bounds, bounds[start] + _CHUNK, side="right")) - 1
        stop = min(max(stop, start + 1), start + max_rows, size)
        blocks.append((start, stop))
        start = stop
    return blocks


def _fold_indices(nnz, seed):
    """``(kept, held)`` index pairs: one tenth, or five disjoint tenths on small data.

    The single split is the package's hold-out rule (``split_indices``); the
    five tenths of small data are consecutive slices of one seeded
    permutation.
    """
    n_folds = _N_FOLDS if nnz < _SMALL_NNZ else 1
    if n_folds == 1:
        kept, held = split_indices(nnz, _VALIDATION_FRACTION, seed)
        return [(kept, held)] if held.size else []
    perm = np.random.RandomState(seed).permutation(nnz)
    size = max(1, int(round(_VALIDATION_FRACTION * nnz)))
    pairs = []
    for f in range(n_folds):
        held = np.sort(perm[f * size : (f + 1) * size])
        if held.size == 0 or held.size >= nnz:
            continue
        keep = np.ones(nnz, dtype=bool)
        keep[held] = False
        pairs.append((np.flatnonzero(keep), held))
    return pairs


def _folds(rows, cols, values, shape, device, dtype, seed):
    """Held-out sets as ``(train, valid)`` pairs of :class:`_Entries`.

    ``rows, cols, values`` are the observed entries in row-major order; each
    subset keeps that order. Built straight from the arrays (no full
    :class:`_Entries` beside them), one fold's index arrays at a time.
    """
    folds = []
    for kept, held in _fold_indices(rows.size, seed):
        train = _Entries(rows[kept], cols[kept], values[kept], shape, device, dtype)
        del kept
        valid = _Entries(rows[held], cols[held], values[held], shape, device, dtype)
        folds.append((train, valid))
        _trim_heap(rows.size)
    return folds
