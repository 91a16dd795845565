"""The penalty path of :class:`~sklearn_mc.SGDMFImputer` and its stopping rules.

The penalty falls geometrically from half the smallest penalty at which zero
factors are a local minimum (SoftImpute's ``λ_max`` for this penalty,
Mazumder, Hastie and Tibshirani, "Spectral regularization algorithms for
learning large incomplete matrices", 2010) to ``alpha``:
:class:`_PenaltyPath` is the training loop's :class:`~sklearn_mc._callbacks.Schedule`
of it; the stopping rule is the loop's :class:`~sklearn_mc._callbacks.Plateau`,
judged only once the path is all but over (its ``start`` and ``every``).
"""

from __future__ import annotations

import math

import torch

from ._callbacks import DivergenceError
from ._linalg import low_rank_svd
from ._sgd_mf_factors import _on_sparse_device, _sparse_pair

#: the automatic path starts at this fraction of the penalty that makes zero
#: factors stable, so that the leading direction grows from the first epoch
#: instead of waiting, neutral, for the penalty to fall.
_PATH_START = 0.5
#: a fit whose final loss exceeds its starting loss by this factor has failed.
_FAILED_FIT_FACTOR = 2.0
#: ... unless it stays below this fraction of the data's mean square.
_FAILED_FIT_FLOOR = 0.1


class _PenaltyPath:
    """``alpha_t = alpha + (alpha_init - alpha) · decay**(t · steps)`` at epoch ``t``.

    The path advances once per optimiser step (``steps`` per epoch), so that
    large data sets, fitted in mini-batches, do not need more epochs. Called
    with the epoch number (a :class:`~sklearn_mc._callbacks.Schedule`), it sets
    :attr:`current`, the penalty of the loss.
    """

    def __init__(self, alpha: float, alpha_init: float, decay: float, steps: int):
        self.alpha, self.alpha_init = alpha, alpha_init
        self.decay, self.steps = decay, steps
        self.current = alpha_init

    @property
    def on_path(self) -> bool:
        return self.alpha_init > self.alpha

    def at(self, epoch: int) -> float:
        """The penalty of epoch ``epoch`` (0-based)."""
        return self.alpha + (self.alpha_init - self.alpha) * self.decay ** (
            epoch * self.steps
        )

    def __call__(self, epoch: int) -> None:
        self.current = self.at(epoch)

    def check_interval(self) -> int:
        """Epochs between two checks of the monitored loss (see
        :func:`_check_interval`)."""
        return _check_interval(self.on_path, self.decay, self.steps)

    def end_epoch(self) -> int:
        """First epoch at which the path has covered 99.9 % of its way."""
        return math.ceil(_path_end(self.decay) / self.steps)

    def label(self) -> dict:
        """The current penalty for the progress display."""
        return {"penalty": _penalty_label(self.current)}


def _penalty_label(alpha: float) -> str:
    """The current penalty for the progress display (``~0`` once negligible)."""
    return f"{alpha:.2g}" if alpha > 1e-12 else "~0"


def _steps_per_epoch(nnz: int, batch_size) -> int:
    """Optimiser steps in one epoch (1 for full batch)."""
    if batch_size is None or batch_size >= nnz:
        return 1
    return math.ceil(nnz / batch_size)


def _check_interval(on_path: bool, decay: float, steps: int = 1) -> int:
    """Epochs between two held-out checks: one per 10 % fall of the penalty.

    Early in the path the penalty still holds the factors near zero while the
    biases fit, so the held-out error may first rise; patience counted in
    steps of the path (``n_iter_no_change`` checks) rather than in epochs keeps
    early stopping from ending the fit before the factors grow.
    """
    if not on_path or decay >= 1:
        return 1
    return max(1, math.ceil(math.ceil(math.log(0.9) / math.log(decay)) / steps))


def _path_end(decay: float) -> int:
    """Epochs after which the path has covered 99.9 % of its way to ``alpha``."""
    if decay >= 1:
        return 0
    return math.ceil(math.log(1e-3) / math.log(decay))


def _check_not_diverged(result, start_validation, scale):
    """Fail loudly when the fit ends far worse than it started.

    A learning rate that is too large for Adam rarely overflows: the loss jumps
    to large finite values and stalls there, which the training loop's
    divergence guard (non-finite or exploding losses) may not catch. The
    starting point (near-zero factors) predicts every entry by the biases, so a
    fit that ends at twice its starting error has failed, unless both are tiny
    against the data's mean square ``scale`` (an exact fit from the start,
    e.g. a single row, moves only by rounding noise).
    """
    if start_validation is not None and result.validation_loss:
        end, start = min(result.validation_loss), start_validation
    elif result.train_loss:
        # the state after the last step against the first epoch's loss
        end, start = result.final_loss, result.train_loss[0]
    else:  # pragma: no cover - train runs at least one epoch
        return
    if not end <= _FAILED_FIT_FACTOR * max(start, _FAILED_FIT_FLOOR * scale):
        raise DivergenceError(
            f"the fit ended with a loss of {end:.3g}, worse than {start:.3g} at the "
            f"start (learning rate at the end: {result.learning_rate:.3g}); the "
            "optimisation diverged: use a smaller learning_rate."
        )


def _zero_threshold(rows, cols, vals, shape, generator, offset=None):
    """Smallest penalty at which all-zero factors are a local minimum.

    The penalty of observed entry (i, j) is ``alpha (|U_i|² + |V_j|²)``, i.e.
    ``alpha uᵀ D_r u + alpha vᵀ D_c v`` in total with ``D_r``, ``D_c`` the
    diagonal matrices of the rows' and columns' observation counts; zero
    factors stop being stable once ``2 uᵀ P_Ω(X) v`` beats it, at
    ``alpha = ‖D_r^{-1/2} P_Ω(X) D_c^{-1/2}‖₂``. This is where the
    regularisation path starts (SoftImpute's ``λ_max`` for this penalty).
    ``P_Ω(X)`` holds ``vals - offset`` (``vals`` when ``offset`` is None),
    formed here so that no caller holds it beside the weighted values.
    """
    if vals.numel() == 0:
        return 0.0
    n_rows, n_cols = shape
    row_count = torch.bincount(rows, minlength=n_rows).to(vals.dtype)
    col_count = torch.bincount(cols, minlength=n_cols).to(vals.dtype)
    # index_select, not indexing: indexing converts int32 indices to an int64
    # copy first; in place below: one temporary, not three
    weight = torch.index_select(row_count, 0, rows)
    weight *= torch.index_select(col_count, 0, cols)
    # into the weights' own memory: the same quotients, one array less
    weighted = torch.div(
        vals if offset is None else vals - offset, weight.sqrt_(), out=weight
    )
    q = min(3, n_rows, n_cols)
    sample, sample_t = _sparse_pair(rows, cols, weighted, shape)
    del weight, weighted
    _, S, _ = low_rank_svd(sample, q, 6, generator, At=sample_t)
    return float(S[0])


def _path_start(model, rows, cols, vals, shape, generator, alpha, alpha_init):
    """The start of the penalty path (``alpha`` without a path)."""
    alpha = float(alpha)
    if alpha_init is None:
        return alpha
    if alpha_init == "auto":
        # model.residual(vals) = vals - offset, formed inside (no copy
        # of it held here while the sample matrix is built)
        offset = model.mu.detach() if model.biases else None
        threshold = _zero_threshold(
            *_on_sparse_device(rows, cols, vals),
            shape,
            generator,
            offset=None if offset is None else _on_sparse_device(offset)[0],
        )
        return max(alpha, _PATH_START * threshold)
    return max(alpha, float(alpha_init))
