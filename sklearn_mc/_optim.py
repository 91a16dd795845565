"""The one training loop of every gradient-trained imputer.

A method supplies its parameters and a loss on a batch of indices (into
whatever it trains on: observed entries, rows, ...); :func:`train` runs a
short loop of shuffled mini-batches (or full batch) with Adam / SGD / RMSprop,
and everything else is a callback (:mod:`sklearn_mc._callbacks`: divergence
monitor, early stopping, plateau, schedules, a method's own stopping rule,
progress bar). ``train``'s keywords build the default list
(:func:`default_callbacks`); ``callbacks=`` adds more. Everything is recorded
in one :class:`History`, from which every method sets the same fitted
attributes.

Divergence rewind
-----------------
When a callback rejects a state (the divergence rule of
:mod:`sklearn_mc._callbacks`: a loss or a parameter not finite, an epoch's
loss far above the first epoch's, a final state worse than the start),
training rewinds to the epoch with the lowest training loss so far (its
parameters, epoch count and early-stopping state), halves the learning rate
and goes on; after ``MAX_DIVERGENCE_RETRIES`` rewinds it raises
:class:`~sklearn_mc._callbacks.DivergenceError`. A fit therefore never returns
a state that is non-finite or worse than its start.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from sklearn.exceptions import ConvergenceWarning

from ._callbacks import (
    Callback,
    Diverged,
    DivergenceError,
    DivergenceMonitor,
    EarlyStopping,
    Plateau,
    ProgressBar,
    Schedule,
    StopWhen,
    _restore,
    _snapshot,
)

#: how many times a diverging fit is rewound and retried with half the
#: learning rate before it gives up with an error.
MAX_DIVERGENCE_RETRIES = 6


@dataclass
class History:
    """What :func:`train` records: one object for every iterative method.

    Attributes
    ----------
    n_iter : int
        Epochs run (the epochs undone by a divergence rewind not counted).
    train_loss : list of float
        Training loss of each epoch (mean over its steps).
    validation_loss : list of float
        Held-out loss at each check (epochs ``validation_iter``).
    validation_iter : list of int
        Epochs after which the held-out loss was computed.
    best_iter : int
        Epoch whose state is kept: the best held-out check with early
        stopping (0: the starting state was best), else the last epoch.
    best_loss : float
        Monitored loss of the kept state (held-out, or training).
    final_loss : float
        Training loss of the state after the last step.
    start_validation_loss : float or None
        Held-out loss of the starting state.
    learning_rate : float
        Learning rate at the end (lower than requested after rewinds).
    n_rewinds : int
        Divergence rewinds (see the module docstring).
    stop_reason : {"max_iter", "early_stopping", "converged"}
        Why training ended.
    max_iter : int
        The epoch budget.
    fit_time : float
        Seconds spent in the loop.
    """

    n_iter: int = 0
    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    validation_iter: list[int] = field(default_factory=list)
    best_iter: int = 0
    best_loss: float = math.nan
    final_loss: float = math.nan
    start_validation_loss: float | None = None
    learning_rate: float = 0.0
    n_rewinds: int = 0
    stop_reason: str = "max_iter"
    max_iter: int = 0
    fit_time: float = 0.0

    def export(self, estimator) -> None:
        """Set the fitted attributes every iterative estimator exposes.

        ``n_iter_``, ``best_iter_``, ``stop_reason_``, ``loss_curve_``,
        ``validation_loss_curve_`` and ``history_`` (this object).
        """
        estimator.n_iter_ = self.n_iter
        estimator.best_iter_ = self.best_iter
        estimator.stop_reason_ = self.stop_reason
        estimator.loss_curve_ = list(self.train_loss)
        estimator.validation_loss_curve_ = list(self.validation_loss)
        estimator.history_ = self

    def summary(self, name: str) -> str:
        """One line: epochs, why training stopped, the kept loss and the time."""
        reason = {
            "max_iter": "reached max_iter",
            "early_stopping": "stopped early: no held-out improvement",
            "converged": "converged",
        }.get(self.stop_reason, self.stop_reason)
        if self.start_validation_loss is not None and self.validation_loss:
            when = f"epoch {self.best_iter}" if self.best_iter else "the start"
            kept = f"best held-out loss {self.best_loss:.4g} at {when}"
        else:
            kept = f"final training loss {self.final_loss:.4g}"
        rewinds = ""
        if self.n_rewinds:
            rewinds = (
                f"; {self.n_rewinds} divergence rewind(s), learning rate lowered "
                f"to {self.learning_rate:.3g}"
            )
        return (
            f"{name}: {self.n_iter}/{self.max_iter} epochs, {reason}; {kept}"
            f"{rewinds}; {self.fit_time:.2f} s"
        )


#: the name the estimators used before :class:`History`.
TrainResult = History


class GroupRMSprop(torch.optim.Optimizer):
    """Gradient descent with one adaptive step size for all parameters.

    The step is ``lr / (sqrt(v) + eps)`` times the gradient, with ``v`` a
    bias-corrected running average of the squared norm of the whole gradient
    (all parameters together). Unlike Adam or RMSprop, the update keeps the
    direction of the plain gradient, and so its implicit bias; only its
    length adapts. This is the optimiser of Arora et al. (2019)'s deep
    matrix factorisation experiments.
    """

    def __init__(self, params, lr=1e-3, alpha=0.99, eps=1e-4, weight_decay=0.0):
        super().__init__(
            params, {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay}
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [
                p.grad + group["weight_decay"] * p if group["weight_decay"] else p.grad
                for p in params
            ]
            state = self.state[params[0]]
            state["step"] = state.get("step", 0) + 1
            sq = sum((g * g).sum() for g in grads)
            alpha = group["alpha"]
            state["square_avg"] = (
                alpha * state.get("square_avg", 0.0) + (1 - alpha) * sq
            )
            avg = (state["square_avg"] / (1 - alpha ** state["step"])).sqrt()
            scale = group["lr"] / (avg + group["eps"])
            for p, g in zip(params, grads, strict=True):
                p.sub_(scale * g)
        return loss


def make_optimizer(
    name: str, params: list[torch.Tensor], learning_rate: float, weight_decay=0.0
) -> torch.optim.Optimizer:
    """Build the optimiser called ``name``.

    One of "adam", "sgd" (momentum 0.9), "rmsprop" or "grouprmsprop"
    (:class:`GroupRMSprop`: plain gradient direction, one adaptive step).
    """
    if name == "adam":
        return torch.optim.Adam(params, lr=learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=learning_rate, momentum=0.9, weight_decay=weight_decay
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=learning_rate, weight_decay=weight_decay)
    if name == "grouprmsprop":
        return GroupRMSprop(params, lr=learning_rate, weight_decay=weight_decay)
    raise ValueError(
        f"unknown optimizer {name!r}; use 'adam', 'sgd', 'rmsprop' or 'grouprmsprop'."
    )


def train(
    params: Iterable[torch.Tensor],
    loss_fn: Callable[[torch.Tensor | None], torch.Tensor],
    *,
    n_samples: int,
    batch_size: int | None,
    max_iter: int,
    learning_rate: float,
    generator: torch.Generator,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    tol: float = 1e-4,
    n_iter_no_change: int | None = 10,
    validation_fn: Callable[[], float] | None = None,
    validation_interval: int = 1,
    on_epoch_start: Callable[[int], None] | None = None,
    status_fn: Callable[[], dict] | None = None,
    stop_fn: Callable[[int], bool] | None = None,
    warn_tol: float | None = None,
    verbose: int = 0,
    desc: str = "fit",
    callbacks: Iterable[Callback] = (),
) -> History:
    """Minimise ``loss_fn`` over ``params``.

    The keywords from ``tol`` to ``verbose`` choose the default callbacks
    (:func:`default_callbacks`); ``callbacks`` adds a method's own.

    Parameters
    ----------
    params : iterable of torch.Tensor
        Leaf tensors with ``requires_grad=True``; updated in place.
    loss_fn : callable
        ``loss_fn(idx)`` returns the scalar mean loss on the items ``idx`` (a
        LongTensor on the parameters' device), or on all items when ``idx`` is
        None (full batch).
    n_samples : int
        Number of items the mini-batches are drawn from.
    batch_size : int or None
        Items per step; None or ``>= n_samples`` means full batch.
    max_iter : int
        Maximum number of epochs (passes over the items).
    learning_rate : float
        Initial step size; halved at each divergence rewind.
    generator : torch.Generator
        CPU generator for the shuffles (reproducibility).
    optimizer : {"adam", "sgd", "rmsprop", "grouprmsprop"}, default="adam"
        The update rule.
    weight_decay : float, default=0.0
        Decoupled L2 penalty passed to the optimiser.
    tol : float, default=1e-4
        Relative improvement of the monitored loss that counts as progress.
    n_iter_no_change : int or None, default=10
        Stop after this many checks without progress. None: no such rule (no
        :class:`Plateau` on the training loss), for a method whose own
        stopping rule (``stop_fn``, ``callbacks``) is the only one; early
        stopping (``validation_fn``) needs a patience, so None with a
        ``validation_fn`` raises a ValueError.
    validation_fn : callable or None, default=None
        Returns the held-out loss; when given it is monitored
        (:class:`EarlyStopping`) and the best of the states checked, the
        starting state included, is restored at the end. Otherwise the epoch's
        training loss is monitored (:class:`Plateau`).
    validation_interval : int, default=1
        Epochs between two calls of ``validation_fn``.
    on_epoch_start : callable or None, default=None
        Called with the epoch number before each epoch (annealing, new masks).
    status_fn : callable or None, default=None
        Extra values (a dict of plain-language names) for the progress display.
    stop_fn : callable or None, default=None
        Called with the epoch count after each finished epoch; returning True
        ends training as converged (a method's own stopping rule).
    warn_tol : float or None, default=None
        The tolerance of the convergence rule in charge (default ``tol``; a
        method whose ``stop_fn`` decides passes its own). A
        :class:`~sklearn.exceptions.ConvergenceWarning` is issued when
        training stops at ``max_iter`` and it is positive.
    verbose : int, default=0
        Show progress when truthy and a one-line summary at the end.
    desc : str, default="fit"
        Name of the estimator, for the progress display and the warning.
    callbacks : iterable of Callback, default=()
        More callbacks, run after the defaults and before the progress bar.

    Returns
    -------
    History

    Raises
    ------
    DivergenceError
        When training still diverges after ``MAX_DIVERGENCE_RETRIES`` rewinds
        (see the module docstring).
    """
    defaults = default_callbacks(
        max_iter=max_iter,
        tol=tol,
        n_iter_no_change=n_iter_no_change,
        validation_fn=validation_fn,
        validation_interval=validation_interval,
        on_epoch_start=on_epoch_start,
        stop_fn=stop_fn,
    )
    extra = list(callbacks)
    may_stop_early = (
        validation_fn is not None
        or stop_fn is not None
        or (n_iter_no_change is not None and n_iter_no_change < max_iter)
        or bool(extra)  # a method's own callback may stop the loop
    )
    bar = ProgressBar(verbose, desc, eta=not may_stop_early, status_fn=status_fn)
    loop = _Loop(
        [p for p in params if p.requires_grad],
        loss_fn,
        n_samples=n_samples,
        batch_size=batch_size,
        max_iter=max_iter,
        generator=generator,
        optimizer=optimizer,
        weight_decay=weight_decay,
        learning_rate=learning_rate,
        callbacks=[*defaults, *extra, bar],
    )
    history = loop.run()
    if history.stop_reason == "max_iter":
        warn_not_converged(desc, max_iter, tol if warn_tol is None else warn_tol)
    return history


def default_callbacks(
    *,
    max_iter: int,
    tol: float = 1e-4,
    n_iter_no_change: int | None = 10,
    validation_fn: Callable[[], float] | None = None,
    validation_interval: int = 1,
    on_epoch_start: Callable[[int], None] | None = None,
    stop_fn: Callable[[int], bool] | None = None,
) -> list[Callback]:
    """The callbacks :func:`train` builds from its keywords, in their order.

    :class:`DivergenceMonitor` first; then :class:`EarlyStopping` on
    ``validation_fn``, or else :class:`Plateau` on the training loss (left out
    when ``n_iter_no_change`` is None, and when it exceeds ``max_iter``: it
    could never fire); then :class:`Schedule` (``on_epoch_start``) and
    :class:`StopWhen` (``stop_fn``) when given.
    """
    callbacks: list[Callback] = [DivergenceMonitor()]
    if validation_fn is not None:
        if n_iter_no_change is None:
            raise ValueError(
                "early stopping (validation_fn) needs a patience; "
                "n_iter_no_change=None is for training without a plateau rule."
            )
        callbacks.append(
            EarlyStopping(
                validation_fn,
                tol=tol,
                patience=n_iter_no_change,
                every=validation_interval,
            )
        )
    elif n_iter_no_change is not None and n_iter_no_change <= max_iter:
        callbacks.append(Plateau(tol=tol, patience=n_iter_no_change))
    if on_epoch_start is not None:
        callbacks.append(Schedule(on_epoch_start))
    if stop_fn is not None:
        callbacks.append(StopWhen(stop_fn))
    return callbacks


def warn_not_converged(name: str, max_iter: int, tol: float) -> None:
    """The :class:`~sklearn.exceptions.ConvergenceWarning` of a loop that
    stopped at ``max_iter``, issued only when ``tol > 0`` (scikit-learn's rule;
    ``tol=0`` asks for exactly ``max_iter`` iterations)."""
    if not tol > 0:
        return
    from ._base import warn_user

    warn_user(
        f"{name} stopped at max_iter={max_iter} iterations before its convergence "
        f"rule (tol={tol:g}) was met; increase max_iter, or tol, for a converged "
        "fit.",
        ConvergenceWarning,
    )


# --------------------------------------------------------------------- loop
@dataclass
class _Checkpoint:
    """The start of an epoch: where a divergence rewinds to."""

    params: list[torch.Tensor]
    epoch: int
    n_checks: int
    best_iter: int
    states: list


class _Loop:
    """One :func:`train` run: epochs of steps, callbacks, divergence rewinds."""

    def __init__(
        self,
        params,
        loss_fn,
        *,
        n_samples,
        batch_size,
        max_iter,
        generator,
        optimizer,
        weight_decay,
        learning_rate,
        callbacks,
    ):
        self.params, self.loss_fn, self.callbacks = params, loss_fn, list(callbacks)
        self.n_samples, self.batch_size, self.generator = (
            n_samples,
            batch_size,
            generator,
        )
        self.full_batch = batch_size is None or batch_size >= n_samples
        self.max_iter, self.lr = max_iter, learning_rate
        self.optimizer_name, self.weight_decay = optimizer, weight_decay
        self.optimizer = make_optimizer(optimizer, params, self.lr, weight_decay)
        self.history = History(learning_rate=self.lr, max_iter=max_iter)
        self.epoch, self.stopped = 0, False

    def run(self) -> History:
        """Epochs until a callback stops or ``max_iter``, then the final check."""
        hist = self.history
        started = time.perf_counter()
        try:
            self._notify("on_train_begin")
            self.checkpoint = self._epoch_start = self._mark()
            while True:
                try:
                    if self.epoch < self.max_iter and not self.stopped:
                        self._run_epoch()
                        continue
                    hist.final_loss = self._evaluate()
                    self._notify("on_final_state")
                    break
                except Diverged:
                    self.rewind()
        finally:
            for callback in self.callbacks:
                callback.close()
        hist.best_iter, hist.best_loss = hist.n_iter, hist.final_loss
        hist.fit_time = time.perf_counter() - started
        self._notify("on_train_end")
        return hist

    def stop(self, reason: str) -> None:
        """End training after this epoch; ``reason`` becomes ``stop_reason``."""
        self.history.stop_reason = reason
        self.stopped = True

    def save_checkpoint(self) -> None:
        """Make the start of the epoch just run the place a rewind goes to."""
        self.checkpoint = self._epoch_start

    def rewind(self) -> None:
        """Back to the checkpoint, with half the learning rate."""
        hist, cp = self.history, self.checkpoint
        hist.n_rewinds += 1
        if hist.n_rewinds > MAX_DIVERGENCE_RETRIES:
            _restore(self.params, cp.params)
            raise DivergenceError(
                "training diverged (non-finite or exploding loss, or a final "
                f"state worse than the start) {hist.n_rewinds} times even "
                f"after lowering the learning rate to {self.lr:.3g}; use a "
                "smaller learning_rate or stronger regularisation."
            )
        _restore(self.params, cp.params)
        self._epoch_start = cp
        self.epoch = hist.n_iter = cp.epoch
        del hist.train_loss[cp.epoch :]
        del hist.validation_loss[cp.n_checks :]
        del hist.validation_iter[cp.n_checks :]
        hist.best_iter = cp.best_iter
        for callback, state in zip(self.callbacks, cp.states, strict=True):
            callback.restore(state)
        hist.stop_reason, self.stopped = "max_iter", False
        self.lr /= 2
        hist.learning_rate = self.lr
        self.optimizer = make_optimizer(
            self.optimizer_name, self.params, self.lr, self.weight_decay
        )

    def _run_epoch(self) -> None:
        self._notify("on_epoch_begin")
        loss = _run_epoch(
            self.params,
            self.optimizer,
            self.loss_fn,
            self.n_samples,
            self.batch_size,
            self.full_batch,
            self.generator,
            self.params[0].device,
        )
        self.epoch += 1
        self.history.n_iter = self.epoch
        self.history.train_loss.append(loss)
        self._notify("on_epoch_end")
        self._epoch_start = self._mark()

    def _mark(self) -> _Checkpoint:
        hist = self.history
        return _Checkpoint(
            _snapshot(self.params),
            self.epoch,
            len(hist.validation_loss),
            hist.best_iter,
            [callback.state() for callback in self.callbacks],
        )

    def _notify(self, hook: str) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, self.history)

    @torch.no_grad()
    def _evaluate(self) -> float:
        """Training loss of the current state, in the loop's batches, no step."""
        if self.full_batch:
            return float(self.loss_fn(None))
        device = self.params[0].device
        total = torch.zeros((), dtype=torch.float64, device=device)
        order = torch.arange(self.n_samples, device=device)
        for idx in torch.split(order, self.batch_size):
            total += self.loss_fn(idx).to(torch.float64) * idx.numel()
        return float(total) / self.n_samples


def _run_epoch(params, opt, loss_fn, n_samples, batch_size, full_batch, gen, device):
    if full_batch:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(None)
        loss.backward()
        opt.step()
        return float(loss.detach())
    order = torch.randperm(n_samples, generator=gen).to(device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    for idx in torch.split(order, batch_size):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(idx)
        loss.backward()
        opt.step()
        total += loss.detach().to(torch.float64) * idx.numel()
    return float(total) / n_samples
