"""The one training loop of every gradient-trained imputer.

A method supplies its parameters and a loss on a batch of indices (into
whatever it trains on: observed entries, rows, ...); :func:`train` runs a
short loop of shuffled mini-batches (or full batch) with Adam / SGD / RMSprop,
and everything else is a :class:`Callback` (in the style of skorch's), driven
through ``on_epoch_begin(loop, history)`` / ``on_epoch_end(loop, history)``
and friends: :class:`DivergenceMonitor` (the rule below),
:class:`EarlyStopping` on a held-out loss with the best state restored,
:class:`Plateau` (convergence of the training loss), :class:`Schedule` and
:class:`LRSchedule` (a penalty path, an annealing, a step-size schedule),
:class:`StopWhen` (a method's own stopping rule) and :class:`ProgressBar`.
``train``'s keywords build the default list (:func:`default_callbacks`);
``callbacks=`` adds more. Everything is recorded in one :class:`History`,
from which every method sets the same fitted attributes.

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
    n_iter_no_change : int, default=10
        Stop after this many checks without progress.
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
        or n_iter_no_change < max_iter
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
    n_iter_no_change: int = 10,
    validation_fn: Callable[[], float] | None = None,
    validation_interval: int = 1,
    on_epoch_start: Callable[[int], None] | None = None,
    stop_fn: Callable[[int], bool] | None = None,
) -> list[Callback]:
    """The callbacks :func:`train` builds from its keywords, in their order.

    :class:`DivergenceMonitor` first; then :class:`EarlyStopping` on
    ``validation_fn``, or else :class:`Plateau` on the training loss (left out
    when ``n_iter_no_change > max_iter``: it could never fire); then
    :class:`Schedule` (``on_epoch_start``) and :class:`StopWhen` (``stop_fn``)
    when given.
    """
    callbacks: list[Callback] = [DivergenceMonitor()]
    if validation_fn is not None:
        callbacks.append(
            EarlyStopping(
                validation_fn,
                tol=tol,
                patience=n_iter_no_change,
                every=validation_interval,
            )
        )
    elif n_iter_no_change <= max_iter:
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


# ---------------------------------------------------------------- callbacks
class Diverged(Exception):
    """Raised by a callback to reject the current state: the loop rewinds."""


class Callback:
    """A hook into :func:`train`, in the style of skorch's callbacks.

    Each ``on_*`` method receives the running :class:`_Loop` (``loop.params``,
    ``loop.epoch``, ``loop.max_iter``, ``loop.lr``, ``loop.optimizer``,
    ``loop.callbacks``, ``loop.stop(reason)``, ``loop.save_checkpoint()``) and
    its :class:`History`. Every method does nothing by default.

    A callback ends training by calling ``loop.stop(reason)`` and rejects the
    current state (divergence) by raising :class:`Diverged`; the loop then
    rewinds to its last checkpoint, where each callback gets back the value
    its :meth:`state` returned then (through :meth:`restore`).
    """

    def on_train_begin(self, loop: _Loop, history: History) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, loop: _Loop, history: History) -> None:
        """Before each epoch; ``loop.epoch`` counts the epochs already run."""

    def on_epoch_end(self, loop: _Loop, history: History) -> None:
        """After each epoch; its loss is ``history.train_loss[-1]``."""

    def on_final_state(self, loop: _Loop, history: History) -> None:
        """When training would end; ``history.final_loss`` is the training
        loss of the state it would return. Raise :class:`Diverged` to refuse
        it (training rewinds and goes on)."""

    def on_train_end(self, loop: _Loop, history: History) -> None:
        """After the last epoch (not called when training raised)."""

    def close(self) -> None:
        """Release what the callback holds; called last, also after an error."""

    def status(self, loop: _Loop, history: History) -> dict:
        """Values for the progress display (plain-language names)."""
        return {}

    def state(self):
        """What a divergence rewind must give back (None: nothing)."""
        return None

    def restore(self, state) -> None:
        """Take back the value :meth:`state` returned at the checkpoint."""


class DivergenceMonitor(Callback):
    """Reject the epochs and final states the divergence rule forbids.

    An epoch's loss is rejected when it is not finite, when a parameter is not
    finite, or when it exceeds ``factor`` times the first epoch's; the final
    state when its loss exceeds ``final_factor`` times the first epoch's. The
    start of the epoch with the lowest loss so far is the rewind checkpoint.
    """

    def __init__(
        self, factor: float = DIVERGENCE_FACTOR, final_factor: float = FINAL_FACTOR
    ):
        self.factor, self.final_factor = factor, final_factor
        self.first = self.lowest = None

    def on_train_begin(self, loop, history):
        self.first = self.lowest = None

    def on_epoch_end(self, loop, history):
        loss = history.train_loss[-1]
        self._check(loop, loss, self.factor)
        if loop.epoch == 1:
            # the start's loss, measured again after each rewind to it: the
            # largest measure, as a random loss may have drawn a low one
            self.first = loss if self.first is None else max(self.first, loss)
        if self.lowest is None or loss < self.lowest:
            self.lowest = loss
            loop.save_checkpoint()

    def on_final_state(self, loop, history):
        self._check(loop, history.final_loss, self.final_factor)

    def _check(self, loop, loss: float, factor: float) -> None:
        exploded = bool(self.first) and loss > factor * self.first
        if (
            exploded
            or not _is_finite(loss)
            or not all(bool(torch.isfinite(p).all()) for p in loop.params)
        ):
            raise Diverged


class _NoImprovement(Callback):
    """Count the checks without a relative improvement ``tol`` of a loss."""

    def __init__(self, *, tol: float, patience: int):
        self.tol, self.patience = tol, patience
        self.best_value, self.best_epoch, self.no_change = math.inf, 0, 0

    def _check(self, loop, history, value: float) -> bool:
        """Record ``value``; True when it is the best so far."""
        if value < self.best_value - self.tol * abs(self.best_value):
            self.no_change = 0
        else:
            self.no_change += 1
        if not value < self.best_value:
            return False
        self.best_value, self.best_epoch = value, loop.epoch
        history.best_iter = loop.epoch
        return True

    def status(self, loop, history):
        if self.patience > loop.max_iter:
            return {}
        return {"checks without gain": f"{self.no_change}/{self.patience}"}

    def state(self):
        return self.best_value, self.best_epoch, self.no_change

    def restore(self, state):
        self.best_value, self.best_epoch, self.no_change = state


class Plateau(_NoImprovement):
    """Stop as converged after ``patience`` epochs in which the training loss
    did not fall by a fraction ``tol`` below its lowest value."""

    def on_train_begin(self, loop, history):
        self.best_value, self.best_epoch, self.no_change = math.inf, 0, 0

    def on_epoch_end(self, loop, history):
        self._check(loop, history, history.train_loss[-1])
        if self.no_change >= self.patience:
            loop.stop("converged")


class EarlyStopping(_NoImprovement):
    """Early stopping on a held-out loss, with the best state restored.

    Every ``every`` epochs ``validation_fn()`` is recorded in the history;
    after ``patience`` checks without a relative improvement ``tol``, training
    stops (``"early_stopping"``). At the end the parameters of the best check
    are restored (``restore_best``), or the starting state's when no check
    beat it. A non-finite held-out loss is a divergence.
    """

    def __init__(
        self,
        validation_fn: Callable[[], float],
        *,
        tol: float = 1e-4,
        patience: int = 10,
        every: int = 1,
        restore_best: bool = True,
    ):
        super().__init__(tol=tol, patience=patience)
        self.validation_fn, self.every = validation_fn, every
        self.restore_best = restore_best
        self.start = self.best_state = None

    def on_train_begin(self, loop, history):
        value = float(self.validation_fn())
        history.start_validation_loss = value
        if not _is_finite(value):
            raise DivergenceError(
                f"the held-out loss of the starting point is {value}; the "
                "data or the model's initialisation is not usable."
            )
        self.start = _snapshot(loop.params) if self.restore_best else None
        self.best_value, self.best_state, self.best_epoch, self.no_change = (
            math.inf,
            self.start,
            0,
            0,
        )

    def on_epoch_end(self, loop, history):
        if loop.epoch % self.every:
            return
        value = float(self.validation_fn())
        if not _is_finite(value):
            raise Diverged
        history.validation_loss.append(value)
        history.validation_iter.append(loop.epoch)
        if self._check(loop, history, value) and self.restore_best:
            self.best_state = _snapshot(loop.params)
        if self.no_change >= self.patience:
            loop.stop("early_stopping")

    def on_train_end(self, loop, history):
        if not history.validation_loss:
            return
        if not self.best_value <= history.start_validation_loss:
            self.best_value, self.best_state, self.best_epoch = (
                history.start_validation_loss,
                self.start,
                0,
            )
        history.best_iter, history.best_loss = self.best_epoch, self.best_value
        if self.restore_best:
            _restore(loop.params, self.best_state)

    def status(self, loop, history):
        values = {}
        if history.validation_loss:
            values["held-out loss"] = f"{history.validation_loss[-1]:.4g}"
            values["best"] = f"{self.best_value:.4g} (epoch {history.best_iter})"
        return {**values, **super().status(loop, history)}

    def state(self):
        return (*super().state(), self.best_state)

    def restore(self, state):
        *rest, self.best_state = state
        super().restore(tuple(rest))


class Schedule(Callback):
    """Call ``fn(epoch)`` before each epoch (a penalty path, an annealing)."""

    def __init__(self, fn: Callable[[int], None]):
        self.fn = fn

    def on_epoch_begin(self, loop, history):
        self.fn(loop.epoch)


class LRSchedule(Callback):
    """Set the step size to ``loop.lr * factor(epoch)`` before each epoch.

    ``loop.lr`` is the learning rate after the divergence rewinds, so a
    schedule keeps their halvings.
    """

    def __init__(self, factor: Callable[[int], float]):
        self.factor = factor

    def on_epoch_begin(self, loop, history):
        lr = loop.lr * float(self.factor(loop.epoch))
        for group in loop.optimizer.param_groups:
            group["lr"] = lr


class StopWhen(Callback):
    """End training as converged when ``fn(epoch)`` returns True (a method's
    own rule; not asked once another callback has stopped the epoch)."""

    def __init__(self, fn: Callable[[int], bool]):
        self.fn = fn

    def on_epoch_end(self, loop, history):
        if not loop.stopped and self.fn(loop.epoch):
            loop.stop("converged")


class ProgressBar(Callback):
    """The progress display (:func:`progress`) and, at the end, the summary.

    The values shown are the training loss, each other callback's
    :meth:`~Callback.status` and ``status_fn()``. Put it last.
    """

    def __init__(
        self,
        verbose: int,
        desc: str,
        *,
        eta: bool = True,
        status_fn: Callable[[], dict] | None = None,
    ):
        self.verbose, self.desc, self.eta = verbose, desc, eta
        self.status_fn = status_fn
        self.bar = None

    def on_train_begin(self, loop, history):
        self.bar = progress(
            loop.max_iter, self.verbose, self.desc, unit="epoch", eta=self.eta
        )

    def on_epoch_end(self, loop, history):
        if not self.verbose:
            return
        values = {"training loss": f"{history.train_loss[-1]:.4g}"}
        for callback in loop.callbacks:
            if callback is not self:
                values.update(callback.status(loop, history))
        if self.status_fn is not None:
            values.update(self.status_fn())
        self.bar.n = loop.epoch - 1  # a rewind moves the count back
        self.bar.set_postfix(values, refresh=False)
        self.bar.update(1)

    def on_train_end(self, loop, history):
        if self.verbose:
            print(history.summary(self.desc), file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


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


def _snapshot(params):
    return [p.detach().clone() for p in params]


def _restore(params, state):
    with torch.no_grad():
        for p, s in zip(params, state, strict=True):
            p.copy_(s)


def _is_finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")
