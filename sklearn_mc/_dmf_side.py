"""The training-time encoding of DMF's branches and its cosine heads.

Nguyen, Tsiligianni and Deligiannis, "Matrix Factorization via Deep Learning":
the prediction for an entry is the cosine similarity of its row's and its
column's factors. This module holds how one side's training vectors are
encoded at each step (:class:`_Side`: exactly, from a cache refreshed every few
steps with a delayed gradient, :class:`_DelayedGradient`, or through a fixed
projection, :func:`_project`), the estimate that chooses between them
(:func:`_touched_entries`), and the cosine heads over chunks of entries
(:func:`_heads`, :func:`_predict_chunked`, :func:`_cosine`).
"""

from __future__ import annotations

import numpy as np
import torch

from ._dmf_branch import _csr

#: training entries pushed through the branches at once: a larger batch (full
#: batch) is processed chunk by chunk under activation checkpointing, so its
#: memory is O(chunk x width), not O(observed entries x width).
_ENTRY_CHUNK = 8192


def _project(triplets, n_vectors, projection):
    """``S R`` for the ``(vector, input, value)`` entries of ``S``, in chunks."""
    vectors, inputs, values = triplets
    out = projection.new_zeros((n_vectors, projection.shape[1]))
    for start in range(0, vectors.numel(), _ENTRY_CHUNK * 8):
        sl = slice(start, start + _ENTRY_CHUNK * 8)
        out.index_add_(0, vectors[sl], values[sl, None] * projection[inputs[sl]])
    return out


def _touched_entries(counts: np.ndarray, n_entries: int, batch: int) -> float:
    """Expected observed entries of the vectors a random batch of entries touches.

    A vector with ``c`` of the ``n_entries`` training entries is touched by a
    batch of ``batch`` entries drawn without replacement with probability
    about ``1 - (1 - c / n_entries) ** batch``.
    """
    c = counts[counts > 0].astype(np.float64)
    with np.errstate(divide="ignore"):
        untouched = np.exp(batch * np.log1p(-np.minimum(c / n_entries, 1.0)))
    return float((c * (1.0 - untouched)).sum())


class _Side:
    """The first layer of one branch on the training vectors of its side.

    Exact mode (``interval == 0``) encodes, at every step, the vectors the
    batch touches from all their observed entries: a step costs the entries
    of those vectors, which for the long side of a tall matrix (each column
    of a 100,000-row table) is every entry, so an epoch would cost
    O(n_observed² / batch_size).

    Cached mode keeps ``H = S W`` (first-layer products of all vectors of the
    side, no bias) and refreshes it every ``interval`` steps: a step reads
    ``H`` at its rows (O(batch)) and the gradient that reaches ``H`` is
    accumulated; at the next refresh it is pushed through the linear first
    layer in one sparse product, ``∂L/∂W = Sᵀ ∂L/∂H`` (O(n_observed ·
    width)), and added to that step's gradient of ``W``. So the first layer
    sees every step's gradient, delayed by at most ``interval`` steps (as in
    asynchronous SGD), and an epoch costs O(n_observed · width ·
    (latent_dim + epoch refreshes)). The part of ``W`` that the
    leave-target-out correction touches gets its gradient at once.
    """

    def __init__(self, branch, sparse, n_vectors, interval, other, triplets=None):
        self.branch = branch
        self.sparse = sparse
        self.interval = int(interval)
        self.cache = None
        self.steps = 0
        self.projected = None
        if branch.projection is not None:
            # projected mode: the inputs' projections ``S R`` are fixed, and
            # a step multiplies them by ``W`` (n_vectors x n_project x width)
            self.interval = 0
            with torch.no_grad():
                if sparse is not None:
                    self.projected = torch.sparse.mm(
                        _csr(sparse, n_vectors, branch.n_inputs), branch.projection
                    )
                else:
                    self.projected = _project(triplets, n_vectors, branch.projection)
            self.sparse = None
            return
        # all vectors as one CSR view (for evaluation: no gather, no copy)
        self.all = _csr(sparse, n_vectors, branch.n_inputs)
        if self.interval:
            # ``S`` and ``Sᵀ`` as CSR views of the entries grouped by this
            # side's vectors and by the other side's (no copy of the entries)
            self.matrix_t = _csr(other, branch.n_inputs, n_vectors)

    def reset(self):
        """Drop the cache (start of an epoch, also after a divergence rewind)."""
        self.cache = None
        self.steps = 0

    def step(self):
        """Called once per training step; returns the delayed-gradient term."""
        if not self.interval:
            return None
        term = None
        if self.steps % self.interval == 0:
            if self.cache is not None and self.cache.grad is not None:
                delayed = torch.sparse.mm(self.matrix_t, self.cache.grad)
                term = _DelayedGradient.apply(self.branch.weight, delayed)
            self.cache = self.product().requires_grad_(True)
        self.steps += 1
        return term

    @torch.no_grad()
    def product(self):
        """First-layer products ``S W`` (no bias) of all vectors of the side."""
        return torch.sparse.mm(self.all, self.branch.weight)

    def encode(self, select, training):
        """First-layer products (no bias) of the vectors ``select``, + inverse."""
        if self.projected is not None:
            return self.projected @ self.branch.weight, select
        if not training:
            # evaluation (no gradient): the first-layer products of all
            # vectors, which cost what a gather of the touched vectors'
            # entries would (a held-out set touches most of them), without
            # copying the entries
            with torch.no_grad():
                return torch.sparse.mm(self.all, self.branch.weight), select
        if self.interval:
            return self.cache, select
        unique, inverse = torch.unique(select, return_inverse=True)
        return self.branch.first_sparse(*self.sparse.gather(unique)), inverse


class _DelayedGradient(torch.autograd.Function):
    """A zero whose gradient with respect to ``weight`` is ``gradient``.

    Adding it to a loss adds ``gradient`` to ``weight.grad`` at the backward
    pass, as ``(weight * gradient).sum()`` would, without that product (a
    temporary the size of the weight: ``n_samples x width`` for the column
    branch).
    """

    @staticmethod
    def forward(ctx, weight, gradient):
        ctx.save_for_backward(gradient)
        return weight.new_zeros(())

    @staticmethod
    def backward(ctx, upstream):
        (gradient,) = ctx.saved_tensors
        return gradient * upstream, None


def _heads(rb, cb, hU, hV, inv_r, inv_c, sel_rows, sel_cols, y):
    """Cosine outputs for entries, from first-layer products of their vectors."""
    a, b = hU[inv_r], hV[inv_c]
    if y is not None:
        # the entry to predict is not part of its own inputs, as for a
        # missing entry at prediction time
        a = a - y[:, None] * rb.input_rows(sel_cols)
        b = b - y[:, None] * cb.input_rows(sel_rows)
    return _cosine(rb.rest(a + rb.bias), cb.rest(b + cb.bias))


def _predict_chunked(rb, cb, hU, hV, inv_r, inv_c, sel_rows, sel_cols, y):
    """:func:`_heads` in chunks of entries (checkpointed when gradients flow)."""
    n = inv_r.numel()
    if n <= _ENTRY_CHUNK:
        return _heads(rb, cb, hU, hV, inv_r, inv_c, sel_rows, sel_cols, y)
    from torch.utils.checkpoint import checkpoint

    parts = []
    for start in range(0, n, _ENTRY_CHUNK):
        sl = slice(start, start + _ENTRY_CHUNK)
        args = (inv_r[sl], inv_c[sl], sel_rows[sl], sel_cols[sl])
        yy = None if y is None else y[sl]
        if torch.is_grad_enabled():
            parts.append(
                checkpoint(_heads, rb, cb, hU, hV, *args, yy, use_reentrant=False)
            )
        else:
            parts.append(_heads(rb, cb, hU, hV, *args, yy))
    return torch.cat(parts)


def _cosine(U, V):
    U = torch.nn.functional.normalize(U, dim=-1, eps=1e-12)
    V = torch.nn.functional.normalize(V, dim=-1, eps=1e-12)
    return (U * V).sum(-1)
