"""The one training loop of every gradient-trained imputer.

A method supplies its parameters and a loss on a batch of indices (into
whatever it trains on: observed entries, rows, ...); :func:`train` does the
rest: shuffled mini-batches or full batch, Adam / SGD / RMSprop, early stopping
on a validation callable (held-out observed entries), convergence on the
training loss, the divergence rule below, a progress display and a
:class:`History` from which every method sets the same fitted attributes.

Divergence rule
---------------
Training has diverged when a loss (an epoch's training loss, a held-out loss,
or the training loss of the final state, evaluated after the last step) is
not finite, when a parameter is not finite, when an epoch's loss exceeds
``DIVERGENCE_FACTOR`` times the first epoch's, or when the final state's loss
exceeds ``FINAL_FACTOR`` times the first epoch's (the fit ends worse than it
started). Training then rewinds to the epoch with the lowest training loss so
far (its parameters, epoch count and early-stopping state), halves the
learning rate and goes on; after ``MAX_DIVERGENCE_RETRIES`` rewinds it raises
:class:`DivergenceError`. A fit therefore never returns a state that is
non-finite or worse than its start.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from sklearn.exceptions import ConvergenceWarning
from tqdm.auto import tqdm

#: how many times a diverging fit is rewound and retried with half the
#: learning rate before it gives up with an error.
MAX_DIVERGENCE_RETRIES = 6
#: a finite epoch loss this many times above the first epoch's also counts as
#: divergence (not the lowest's: near an exact fit, harmless noise on a loss of
#: 1e-12 would look like an explosion): steps so large that the loss
#: explodes without overflowing (Adam with a huge learning rate).
DIVERGENCE_FACTOR = 1e4
#: the final state (after the last step) has diverged when its training loss
#: exceeds the first epoch's by this factor. Not 1: in mini-batches the first
#: epoch's loss is an average over its steps, and some losses are themselves
#: random (the MLP's masks), so a fit that made little progress may measure
#: above it without having diverged. Fits that returned garbage before this
#: check (fill values tens of times the data's range) measured 280x to 1e37x
#: their first epoch's loss.
FINAL_FACTOR = 2.0


class DivergenceError(RuntimeError):
    """Training diverged and halving the step size did not help."""


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


def progress(
    total: int, verbose: int, desc: str, *, unit: str = "it", eta: bool = True
):
    """A progress display on stderr, shown only when ``verbose`` is truthy.

    On a terminal (or in a notebook) a tqdm bar, kept at the end when
    ``verbose > 1``; ``eta=False`` leaves out the remaining-time estimate (a
    loop that may stop early has none worth showing). When stderr is not a
    terminal (a redirected log) plain lines, about ten per loop, replace the
    bar's ``\\r`` frames.
    """
    if not verbose:
        return tqdm(total=total, disable=True)
    if not _interactive():
        return _LogLines(total, desc, unit)
    fmt = None
    if not eta:
        fmt = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}{postfix}]"
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        leave=verbose > 1,
        bar_format=fmt,
        file=sys.stderr,
    )


def _interactive() -> bool:
    if "ipykernel" in sys.modules:  # notebooks: tqdm.auto draws a widget
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class _LogLines:
    """The part of tqdm's interface the loops use, as plain lines on stderr."""

    def __init__(self, total: int, desc: str, unit: str):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0
        self.postfix: dict = {}
        self.every = max(1, math.ceil(total / 10)) if total else 1

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def update(self, n: int = 1) -> None:
        before, self.n = self.n, self.n + n
        if self.n // self.every > before // self.every or self.n == self.total:
            values = "".join(f", {k}={v}" for k, v in self.postfix.items())
            self.write(f"{self.desc}: {self.n}/{self.total} {self.unit}{values}")

    def write(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


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
    n_iter_no_change: int = 10,
    validation_fn: Callable[[], float] | None = None,
    validation_interval: int = 1,
    on_epoch_start: Callable[[int], None] | None = None,
    status_fn: Callable[[], dict] | None = None,
    stop_fn: Callable[[int], bool] | None = None,
    warn_tol: float | None = None,
    verbose: int = 0,
    desc: str = "fit",
) -> History:
    """Minimise ``loss_fn`` over ``params``.

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
    n_iter_no_change : int, default=10
        Stop after this many checks without progress.
    validation_fn : callable or None, default=None
        Returns the held-out loss; when given it is monitored (early stopping)
        and the best of the states checked, the starting state included, is
        restored at the end. Otherwise the epoch's training loss is monitored.
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

    Returns
    -------
    History

    Raises
    ------
    DivergenceError
        When training still diverges after ``MAX_DIVERGENCE_RETRIES`` rewinds
        (see the module docstring).
    """
    loop = _Loop(
        [p for p in params if p.requires_grad],
        loss_fn,
        n_samples=n_samples,
        batch_size=batch_size,
        generator=generator,
        optimizer=optimizer,
        weight_decay=weight_decay,
        learning_rate=learning_rate,
        validation_fn=validation_fn,
    )
    hist = loop.hist
    hist.max_iter = max_iter
    may_stop_early = (
        validation_fn is not None or stop_fn is not None or n_iter_no_change < max_iter
    )
    bar = progress(max_iter, verbose, desc, unit="epoch", eta=not may_stop_early)
    started = time.perf_counter()
    try:
        while not loop.done(max_iter):
            if on_epoch_start is not None:
                on_epoch_start(loop.epoch)
            if not loop.run_epoch(tol, validation_interval):
                continue
            if verbose:
                bar.n = loop.epoch - 1  # a rewind moves the count back
                bar.set_postfix(
                    loop.postfix(status_fn, n_iter_no_change), refresh=False
                )
                bar.update(1)
            if loop.no_change >= n_iter_no_change:
                loop.stop("early_stopping" if validation_fn else "converged")
            elif stop_fn is not None and stop_fn(loop.epoch):
                loop.stop("converged")
    finally:
        bar.close()
    loop.keep_best()
    hist.fit_time = time.perf_counter() - started
    if verbose:
        print(hist.summary(desc), file=sys.stderr, flush=True)
    if hist.stop_reason == "max_iter":
        warn_not_converged(desc, max_iter, tol if warn_tol is None else warn_tol)
    return hist


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


@dataclass
class _Checkpoint:
    """Where a divergence rewinds to: an epoch's start and the loop's state."""

    params: list[torch.Tensor]
    epoch: int
    n_checks: int
    best: tuple


class _Loop:
    """The state of one :func:`train` run: epochs, early stopping, rewinds."""

    def __init__(
        self,
        params,
        loss_fn,
        *,
        n_samples,
        batch_size,
        generator,
        optimizer,
        weight_decay,
        learning_rate,
        validation_fn,
    ):
        self.params, self.loss_fn, self.validation_fn = params, loss_fn, validation_fn
        self.n_samples, self.batch_size, self.generator = (
            n_samples,
            batch_size,
            generator,
        )
        self.full_batch = batch_size is None or batch_size >= n_samples
        self.optimizer, self.weight_decay = optimizer, weight_decay
        self.lr = learning_rate
        self.opt = make_optimizer(optimizer, params, self.lr, weight_decay)
        self.hist = History(learning_rate=self.lr)
        self.start = _snapshot(params)
        self.epoch_start = self.start
        # (best monitored value, its state, its epoch, checks without progress)
        self.best_value, self.best_state, self.no_change = math.inf, self.start, 0
        if validation_fn is not None:
            value = float(validation_fn())
            self.hist.start_validation_loss = value
            if not _is_finite(value):
                raise DivergenceError(
                    f"the held-out loss of the starting point is {value}; the "
                    "data or the model's initialisation is not usable."
                )
        self.checkpoint = self._checkpoint()
        self.first = self.lowest = None
        self.epoch = 0
        self.stopped = False

    def done(self, max_iter: int) -> bool:
        """True once the final state has been checked (rewinds continue)."""
        if self.epoch < max_iter and not self.stopped:
            return False
        final = self._evaluate()
        if self._diverged(final, FINAL_FACTOR):
            self.rewind()
            return False
        self.hist.final_loss = final
        return True

    def run_epoch(self, tol: float, validation_interval: int) -> bool:
        """One epoch; False when it diverged (and training was rewound)."""
        total = _run_epoch(
            self.params,
            self.opt,
            self.loss_fn,
            self.n_samples,
            self.batch_size,
            self.full_batch,
            self.generator,
            self.params[0].device,
        )
        if self._diverged(total, DIVERGENCE_FACTOR):
            self.rewind()
            return False
        if self.epoch == 0:
            # the start's loss, measured again after each rewind to it: the
            # largest measure, as a random loss may have drawn a low one
            self.first = total if self.first is None else max(self.first, total)
        if self.lowest is None or total < self.lowest:
            self.lowest = total
            self.checkpoint = self._checkpoint()
        self.epoch += 1
        hist = self.hist
        hist.n_iter = self.epoch
        hist.train_loss.append(total)
        monitored = total
        checked = self.validation_fn is None or self.epoch % validation_interval == 0
        if self.validation_fn is not None and checked:
            monitored = float(self.validation_fn())
            if not _is_finite(monitored):
                self.rewind()
                return False
            hist.validation_loss.append(monitored)
            hist.validation_iter.append(self.epoch)
        if checked:
            if monitored < self.best_value - tol * abs(self.best_value):
                self.no_change = 0
            else:
                self.no_change += 1
            if monitored < self.best_value:
                self.best_value = monitored
                hist.best_iter = self.epoch
                if self.validation_fn is not None:
                    self.best_state = _snapshot(self.params)
        self.epoch_start = _snapshot(self.params)
        return True

    def stop(self, reason: str) -> None:
        self.hist.stop_reason = reason
        self.stopped = True

    def rewind(self) -> None:
        """Back to the lowest-loss epoch's start, with half the learning rate."""
        self.hist.n_rewinds += 1
        if self.hist.n_rewinds > MAX_DIVERGENCE_RETRIES:
            _restore(self.params, self.checkpoint.params)
            raise DivergenceError(
                "training diverged (non-finite or exploding loss, or a final "
                f"state worse than the start) {self.hist.n_rewinds} times even "
                f"after lowering the learning rate to {self.lr:.3g}; use a "
                "smaller learning_rate or stronger regularisation."
            )
        cp = self.checkpoint
        _restore(self.params, cp.params)
        self.epoch_start = cp.params
        self.epoch = self.hist.n_iter = cp.epoch
        del self.hist.train_loss[cp.epoch :]
        del self.hist.validation_loss[cp.n_checks :]
        del self.hist.validation_iter[cp.n_checks :]
        self.best_value, self.best_state, self.hist.best_iter, self.no_change = cp.best
        self.hist.stop_reason, self.stopped = "max_iter", False
        self.lr /= 2
        self.hist.learning_rate = self.lr
        self.opt = make_optimizer(
            self.optimizer, self.params, self.lr, self.weight_decay
        )

    def keep_best(self) -> None:
        """Restore the best held-out state (the start if no check beat it)."""
        hist = self.hist
        if self.validation_fn is None or not hist.validation_loss:
            hist.best_iter, hist.best_loss = hist.n_iter, hist.final_loss
            return
        if not self.best_value <= hist.start_validation_loss:
            self.best_value, self.best_state, hist.best_iter = (
                hist.start_validation_loss,
                self.start,
                0,
            )
        hist.best_loss = self.best_value
        _restore(self.params, self.best_state)

    def postfix(self, status_fn, patience: int) -> dict:
        hist = self.hist
        values = {"training loss": f"{hist.train_loss[-1]:.4g}"}
        if hist.validation_loss:
            values["held-out loss"] = f"{hist.validation_loss[-1]:.4g}"
            values["best"] = f"{self.best_value:.4g} (epoch {hist.best_iter})"
        if patience <= hist.max_iter:
            values["checks without gain"] = f"{self.no_change}/{patience}"
        if status_fn is not None:
            values.update(status_fn())
        return values

    def _checkpoint(self) -> _Checkpoint:
        best = (self.best_value, self.best_state, self.hist.best_iter, self.no_change)
        return _Checkpoint(
            self.epoch_start,
            getattr(self, "epoch", 0),
            len(self.hist.validation_loss),
            best,
        )

    def _diverged(self, loss: float, factor: float) -> bool:
        exploded = bool(self.first) and loss > factor * self.first
        return (
            exploded
            or not _is_finite(loss)
            or not all(bool(torch.isfinite(p).all()) for p in self.params)
        )

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


def _snapshot(params):
    return [p.detach().clone() for p in params]


def _restore(params, state):
    with torch.no_grad():
        for p, s in zip(params, state, strict=True):
            p.copy_(s)


def _is_finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")
