"""The branches of DMF and the grouping of its observed entries.

Nguyen, Tsiligianni and Deligiannis, "Matrix Factorization via Deep Learning":
each branch is a fully connected network from a (sparse) row or column vector
to a latent factor. This module holds that network (:class:`_Branch`, with its
optional fixed random projection, :func:`_n_project`), the observed entries
grouped by row or by column (:class:`_Sparse`, :func:`_by_column`) and their
zero-copy CSR view (:func:`_csr`), and :func:`build_branches`, the pair of
branches a fit trains.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ._torch import fit_generator, linear


class _Branch(torch.nn.Module):
    """Fully connected layers from a (sparse) row or column vector to a factor.

    The first layer's weight is stored ``(n_inputs, width)`` and sparse
    inputs multiply it as a sparse matrix: a batch costs its observed entries,
    never a dense copy of the vectors. With ``n_project`` the first layer is
    ``R W``: a fixed Gaussian random projection ``R`` (``n_inputs x
    n_project``, scaled to keep norms, Johnson and Lindenstrauss) followed by
    a learned ``W`` (``n_project x width``), for a branch whose inputs are
    far longer than the vectors it encodes are many (see
    :func:`_n_project`).
    """

    def __init__(self, n_inputs, sizes, activation, dtype, generator, n_project=0):
        super().__init__()
        bound = 1.0 / np.sqrt(n_inputs)
        self.n_inputs = n_inputs
        projection = None
        if n_project:
            projection = torch.randn(
                n_inputs, n_project, dtype=dtype, generator=generator
            ) / np.sqrt(n_project)
        self.register_buffer("projection", projection)
        self.weight = torch.nn.Parameter(
            torch.empty(n_project or n_inputs, sizes[0], dtype=dtype).uniform_(
                -bound, bound, generator=generator
            )
        )
        self.bias = torch.nn.Parameter(
            torch.empty(sizes[0], dtype=dtype).uniform_(
                -bound, bound, generator=generator
            )
        )
        act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[activation]
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [act(), linear(n_in, n_out, generator, dtype=dtype)]
        self.rest = torch.nn.Sequential(*layers)

    def first_sparse(self, bags, indices, values, n_bags):
        """First layer's product (no bias) of ``n_bags`` sparse vectors."""
        # the entries come grouped by vector and sorted within it, so the
        # sparse matrix is coalesced by construction
        S = torch.sparse_coo_tensor(
            torch.stack([bags, indices]),
            values,
            (n_bags, self.n_inputs),
            is_coalesced=True,
            check_invariants=False,
        )
        if self.projection is not None:
            return torch.sparse.mm(S, self.projection) @ self.weight
        return torch.sparse.mm(S, self.weight)

    def forward_csr(self, S):
        """Factors of the rows of the CSR matrix ``S``."""
        first = torch.sparse.mm(
            S, self.weight if self.projection is None else self.projection
        )
        if self.projection is not None:
            first = first @ self.weight
        return self.rest(first + self.bias)

    def input_rows(self, idx):
        """Rows ``idx`` of the first layer's (effective) weight."""
        if self.projection is not None:
            return self.projection[idx] @ self.weight
        return self.weight[idx]

    def forward_sparse(self, bags, indices, values, n_bags):
        return self.rest(self.first_sparse(bags, indices, values, n_bags) + self.bias)

    def forward(self, dense):
        if self.projection is not None:
            dense = dense @ self.projection
        return self.rest(dense @ self.weight + self.bias)

    def weights(self):
        """The weight matrices (the biases are not penalised)."""
        return [self.weight] + [m.weight for m in self.rest if hasattr(m, "weight")]


class _Sparse:
    """Observed entries grouped by row (CSR-like) for gathering row vectors."""

    def __init__(self, rows, cols, vals, n_rows):
        if cols.numel() > torch.iinfo(torch.int32).max:
            rows, cols = rows.long(), cols.long()  # int32 index pointers overflow
        # by row, then by column within a row: a coalesced sparse layout
        width = int(cols.max()) + 1 if cols.numel() else 1
        key = rows.to(torch.int64) * width + cols  # int64 whatever the indices
        if bool((key[1:] >= key[:-1]).all()):
            # already in that order (a dense input's row-major entries): the
            # arrays themselves, no sort and no copy
            self.indices, self.values = cols, vals
        else:
            order = torch.argsort(key)
            self.indices = cols[order]
            self.values = vals[order]
        del key
        counts = torch.bincount(rows, minlength=n_rows)
        # in the indices' dtype: a CSR view needs both alike (int32 or int64)
        self.indptr = torch.zeros(n_rows + 1, dtype=cols.dtype, device=rows.device)
        self.indptr[1:] = torch.cumsum(counts, 0)

    def all_vectors(self):
        """Every vector, as :meth:`gather` of ``arange(n)`` returns them.

        The triplets are this object's own arrays (plus the vector of each
        entry): nothing is gathered or copied.
        """
        n = self.indptr.numel() - 1
        bags = torch.repeat_interleave(
            torch.arange(n, dtype=self.indices.dtype, device=self.indptr.device),
            self.indptr[1:] - self.indptr[:-1],
            output_size=self.indices.numel(),
        )
        return bags, self.indices, self.values, n

    def gather(self, select):
        """The vectors ``select`` as (vector, index, value) triplets + count."""
        start = self.indptr[select]
        length = self.indptr[select + 1] - start
        offsets = torch.cumsum(length, 0) - length
        total = int(length.sum())
        bags = torch.arange(select.numel(), device=select.device)
        bags = torch.repeat_interleave(bags, length, output_size=total)
        pos = start[bags] - offsets[bags] + torch.arange(total, device=bags.device)
        return bags, self.indices[pos], self.values[pos], select.numel()


def _csr(sparse, n_vectors, n_inputs):
    """All vectors of ``sparse`` as a CSR ``(n_vectors, n_inputs)`` matrix.

    A view: it shares ``sparse``'s index pointers, indices and values.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta"
        return torch.sparse_csr_tensor(
            sparse.indptr,
            sparse.indices,
            sparse.values,
            (n_vectors, n_inputs),
            check_invariants=False,
        )


def _by_column(by_row, n_rows, n_cols):
    """The entries of ``by_row`` (a :class:`_Sparse`) grouped by column.

    Rows ascend within a column, the order :class:`_Sparse` sorts them in.
    On the CPU this is scipy's CSR to CSC conversion, a counting sort: no
    sort keys, permutation or sort buffers (about 100 MB at 4 million
    entries), only the new arrays.
    """
    if by_row.indices.device.type != "cpu":
        bags, cols, vals, _ = by_row.all_vectors()
        return _Sparse(cols, bags, vals, n_cols)
    import scipy.sparse as sp

    arrays = (by_row.values.numpy(), by_row.indices.numpy(), by_row.indptr.numpy())
    csc = sp.csr_matrix(arrays, shape=(n_rows, n_cols)).tocsc()
    out = _Sparse.__new__(_Sparse)
    out.indptr, out.indices, out.values = (
        torch.from_numpy(a) for a in (csc.indptr, csc.indices, csc.data)
    )
    return out


#: a branch whose inputs are more than this many times longer than its first
#: layer is wide, and which encodes no more vectors than that width, gets a
#: random projection before its first layer (see :class:`_Branch`).
_PROJECT_FACTOR = 16


def _n_project(n_inputs: int, n_vectors: int, width: int) -> int:
    """Projected input size of a branch (0: no projection).

    The column branch of a tall table (each column a 100,000-vector, 50 of
    them) would hold ``n_samples x width`` first-layer weights, with their
    gradients, optimiser state and snapshots, to encode ``n_features``
    vectors. ``n_vectors <= width`` generic projections to ``width``
    dimensions stay linearly independent, so the branch can still map the
    training vectors anywhere, and new vectors are encoded through the
    same, distance-preserving projection.
    """
    if n_vectors <= width and n_inputs > _PROJECT_FACTOR * width:
        return width
    return 0


def build_branches(hidden, latent_dim, activation, shape, dtype, device):
    """The row and the column branch of a ``shape`` matrix, on ``device``.

    Both have the hidden widths ``hidden`` and end in ``latent_dim`` units;
    their weights are drawn from the fit's generator, row branch first.
    """
    n_rows, n_cols = shape
    sizes = list(hidden) + [int(latent_dim)]
    init = fit_generator()
    branches = (
        _Branch(
            n_cols, sizes, activation, dtype, init, _n_project(n_cols, n_rows, sizes[0])
        ),
        _Branch(
            n_rows, sizes, activation, dtype, init, _n_project(n_rows, n_cols, sizes[0])
        ),
    )
    for branch in branches:
        branch.to(device)
    return branches
