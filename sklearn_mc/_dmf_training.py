"""DMF's training objective: the branches' sides and the loss on mini-batches.

Nguyen, Tsiligianni and Deligiannis, "Matrix Factorization via Deep Learning":
the loss is the mean squared error of the cosine predictions on the observed
entries plus γ times the squared norms of the weights (with DMF-D's smooth
quantiser and its boundary penalty). :func:`build_sides` decides how each
branch's first layer sees the training vectors (exactly or from a cache, see
:class:`~sklearn_mc._dmf_side._Side`); :class:`Objective` holds them and gives
the training loop its loss, its held-out error and its epoch hook.
"""

from __future__ import annotations

import math

import torch

from ._dmf_branch import _Sparse
from ._dmf_side import _predict_chunked, _Side, _touched_entries
from ._observed import trim_heap
from ._torch import to_numpy

#: the freed temporaries of the steps (gathered entries, sparse products and
#: their gradients, of sizes that vary from step to step, which the C heap
#: would keep growing with) are returned every this many steps (see
#: :func:`~sklearn_mc._observed.trim_heap`): at every step the pages freshly
#: faulted in again cost about 15 % of the training's time.
_TRIM_STEPS = 16
#: a cached side (see :class:`_Side`) is refreshed at most this many times per
#: epoch (a refresh costs two sparse products over all its entries).
_MAX_REFRESHES = 16
#: a branch side whose vectors touched by one mini-batch hold more observed
#: entries than this times ``batch_size · max(latent_dim, 64)`` (about the
#: cost of the rest of a step) is encoded from a cache that is refreshed every
#: few steps instead of from scratch at each step (see :class:`_Side`).
_CACHE_FACTOR = 1.0


def build_sides(row_branch, col_branch, by_row, t_rows, shape, batch, latent_dim):
    """The first layers of both branches on the training entries.

    ``by_row``: the training entries grouped by row (``t_rows``: the row of
    each, in that order). A side whose mini-batches would touch too many
    entries is cached (see :class:`~sklearn_mc._dmf_side._Side`).

    Returns
    -------
    row_side, col_side : _Side
    """
    n_rows, n_cols = shape
    t_cols, t_vals = by_row.indices, by_row.values
    n_train = t_rows.numel()

    def cache_interval(counts):
        cost = _touched_entries(to_numpy(counts), n_train, batch)
        budget = _CACHE_FACTOR * batch * max(int(latent_dim), 64)
        if batch < n_train and cost > budget:
            steps = math.ceil(n_train / batch)
            return max(math.ceil(n_train / budget), math.ceil(steps / _MAX_REFRESHES))
        return 0

    intervals = (
        cache_interval(by_row.indptr[1:] - by_row.indptr[:-1]),
        cache_interval(torch.bincount(t_cols, minlength=n_cols)),
    )
    # the entries grouped by column are needed by an unprojected column
    # side and by a cached row side (its delayed gradient); a projected
    # column side (a tall table's) reads the triplets once
    col_projected = col_branch.projection is not None
    by_col = None
    if not col_projected or (intervals[0] and row_branch.projection is None):
        by_col = _Sparse(t_cols, t_rows, t_vals, n_cols)
    row_side = _Side(row_branch, by_row, n_rows, intervals[0], by_col)
    col_side = _Side(
        col_branch,
        by_col,
        n_cols,
        intervals[1],
        by_row,
        triplets=(t_cols, t_rows, t_vals),
    )
    return row_side, col_side


class Objective:
    """The mean squared error of DMF (or DMF-D) on its training entries.

    Parameters
    ----------
    row_side, col_side : _Side
        The branches' first layers on the training vectors (:func:`build_sides`).
    train : tuple of tensors
        ``(rows, cols, values)`` of the training entries, in ``row_side``'s
        order.
    held_out : tuple of tensors or None
        ``(rows, cols, values)`` of early stopping's held-out entries.
    penalised : list of tensors
        The weights that ``alpha`` penalises.
    alpha, boundary_penalty : float
        The weights of the L2 penalty and of DMF-D's boundary penalty.
    quantiser : _Quantiser or None
        DMF-D's smooth quantiser (None for DMF).
    leave_target_out : bool
        The entry predicted is removed from its own inputs in training.
    n_observed : int
        Every observed entry (sizes the heap trimming).
    """

    def __init__(
        self,
        row_side,
        col_side,
        train,
        held_out,
        penalised,
        *,
        alpha,
        boundary_penalty,
        quantiser,
        leave_target_out,
        n_observed,
    ):
        self.row_side, self.col_side = row_side, col_side
        self.train, self.held_out = train, held_out
        self.penalised = penalised
        self.alpha, self.boundary_penalty = alpha, boundary_penalty
        self.quantiser = quantiser
        self.leave_target_out = leave_target_out
        self.n_observed = n_observed
        self.steps = 0  # training steps (batches) run, for the heap trimming

    def predict(self, rows, cols, y=None, training=False):
        """Cosine predictions at the entries ``(rows, cols)``.

        ``y``: their values, left out of their own inputs in training (with
        ``leave_target_out``).
        """
        row_side, col_side = self.row_side, self.col_side
        hU, inv_r = row_side.encode(rows, training)
        hV, inv_c = col_side.encode(cols, training)
        return _predict_chunked(
            row_side.branch,
            col_side.branch,
            hU,
            hV,
            inv_r,
            inv_c,
            rows,
            cols,
            y if self.leave_target_out else None,
        )

    def loss(self, idx):
        """The loss on the training entries ``idx`` (None: all of them)."""
        t_rows, t_cols, t_vals = self.train
        if idx is None:
            r, c, y = t_rows, t_cols, t_vals
        else:
            if self.steps % _TRIM_STEPS == 0:
                trim_heap(self.n_observed)
            self.steps += 1
            r, c, y = t_rows[idx], t_cols[idx], t_vals[idx]
        sides = (self.row_side.step(), self.col_side.step())
        delayed = [t for t in sides if t is not None]
        quantiser = self.quantiser
        pred = self.predict(r, c, y, training=True)
        if quantiser is not None:
            pred = quantiser.smooth(pred)
        loss = torch.mean((pred - y) ** 2)
        if self.alpha:
            loss = loss + self.alpha * sum((w**2).sum() for w in self.penalised)
        if quantiser is not None and self.boundary_penalty:
            loss = loss + self.boundary_penalty * quantiser.penalty()
        for term in delayed:
            # adds the cached side's delayed first-layer gradient (the term's
            # value is 0)
            loss = loss + term
        return loss

    def on_epoch_start(self, epoch):
        self.row_side.reset()
        self.col_side.reset()
        if self.quantiser is not None:
            self.quantiser.anneal(epoch)

    @torch.no_grad()
    def validation(self) -> float:
        """Mean squared error on the held-out entries (hard-quantised for DMF-D)."""
        v_rows, v_cols, v_vals = self.held_out
        pred = self.predict(v_rows, v_cols)
        if self.quantiser is not None:
            pred = self.quantiser.hard(pred)
        return float(torch.mean((pred - v_vals) ** 2))

    @torch.no_grad()
    def held_out_prediction(self):
        """The current model's predictions at the held-out entries (or None)."""
        if self.held_out is None:
            return None
        return self.predict(*self.held_out[:2])

    def release(self):
        """Drop the training state (sides, entries), keeping the held-out ones."""
        self.row_side = self.col_side = self.train = self.penalised = None
