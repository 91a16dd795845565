"""The callbacks of the training loop (:func:`sklearn_mc._optim.train`).

Everything the loop does besides running epochs is a :class:`Callback` (in
the style of skorch's), driven through ``on_epoch_begin(loop, history)`` /
``on_epoch_end(loop, history)`` and friends: :class:`DivergenceMonitor` (the
rule below), :class:`EarlyStopping` on a held-out loss with the best state
restored, :class:`Plateau` (convergence of the training loss),
:class:`Schedule` and :class:`LRSchedule` (a penalty path, an annealing, a
step-size schedule), :class:`StopWhen` (a method's own stopping rule) and
:class:`ProgressBar`. :func:`~sklearn_mc._optim.default_callbacks` builds the
list ``train``'s keywords ask for.

Divergence rule
---------------
Training has diverged when a loss (an epoch's training loss, a held-out loss,
or the training loss of the final state, evaluated after the last step) is
not finite, when a parameter is not finite, when an epoch's loss exceeds
``DIVERGENCE_FACTOR`` times the first epoch's, or when the final state's loss
exceeds ``FINAL_FACTOR`` times the first epoch's (the fit ends worse than it
started). A callback rejects such a state by raising :class:`Diverged`; the
loop then rewinds (see :mod:`sklearn_mc._optim`) and, when rewinding no
longer helps, raises :class:`DivergenceError`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ._progress import progress

if TYPE_CHECKING:
    from ._optim import History, _Loop

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


class Diverged(Exception):
    """Raised by a callback to reject the current state: the loop rewinds."""


class Callback:
    """A hook into the training loop, in the style of skorch's callbacks.

    Each ``on_*`` method receives the running :class:`~sklearn_mc._optim._Loop`
    of :func:`~sklearn_mc._optim.train` (``loop.params``, ``loop.epoch``,
    ``loop.max_iter``, ``loop.lr``, ``loop.optimizer``, ``loop.callbacks``,
    ``loop.stop(reason)``, ``loop.save_checkpoint()``) and its
    :class:`~sklearn_mc._optim.History`. Every method does nothing by default.

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
        if exploded or not _is_finite(loss) or not _all_finite(loop.params):
            raise Diverged


class _NoImprovement(Callback):
    """Count the checks without a relative improvement ``tol`` of a loss."""

    def __init__(self, *, tol: float, patience: int):
        self.tol, self.patience = tol, patience
        self.best_value, self.best_epoch, self.no_change = math.inf, 0, 0

    def _check(self, loop, history, value: float) -> bool:
        """Record ``value``; True when it is the best so far."""
        if not self._count(value):
            return False
        self.best_epoch = loop.epoch
        history.best_iter = loop.epoch
        return True

    def _count(self, value: float) -> bool:
        """Count a check without a gain of ``value``; True when it is the
        lowest so far (then ``best_value``)."""
        if value < self.best_value - self.tol * abs(self.best_value):
            self.no_change = 0
        else:
            self.no_change += 1
        if not value < self.best_value:
            return False
        self.best_value = value
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
    """Stop as converged after ``patience`` checks in which the training loss
    did not fall by a fraction ``tol`` below its lowest value.

    The loss is checked every ``every`` epochs from epoch ``start`` on (by
    default every epoch): a schedule that changes the objective each epoch,
    such as a penalty path, is judged only once it is all but over.
    """

    def __init__(self, *, tol: float, patience: int, every: int = 1, start: int = 0):
        super().__init__(tol=tol, patience=patience)
        self.every, self.start = every, start

    def on_train_begin(self, loop, history):
        self.best_value, self.best_epoch, self.no_change = math.inf, 0, 0

    def on_epoch_end(self, loop, history):
        if loop.epoch < self.start or loop.epoch % self.every:
            return
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
    """The progress display (:func:`~sklearn_mc._progress.progress`) and, at
    the end, the summary.

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


def _snapshot(params):
    return [p.detach().clone() for p in params]


class HalveOnPlateau(_NoImprovement):
    """Halve the step size when the held-out loss stops improving; stop as
    early at a plateau after ``halvings`` halvings.

    Reads the checks :class:`EarlyStopping` records (it runs first) and
    counts them as it does, a gain being a relative fall ``tol`` below the
    best check. A fixed step makes the held-out error of a large mini-batch
    fit swing from epoch to epoch, so that early stopping's patience keeps
    being reset by small gains; halving the step settles it (DMF on a 6,040
    x 3,706 rating matrix: 42 epochs and RMSE 0.619 at a fixed step, 17
    epochs and 0.584 with this rule).
    """

    def __init__(self, *, tol: float, patience: int, halvings: int):
        super().__init__(tol=tol, patience=patience)
        self.halvings, self.n_halved, self.n_checks = halvings, 0, 0

    def on_train_begin(self, loop, history):
        self.best_value, self.no_change, self.n_halved, self.n_checks = (
            math.inf,
            0,
            0,
            0,
        )

    def on_epoch_begin(self, loop, history):
        # loop.lr keeps the halvings of divergence rewinds (they rebuild the
        # optimiser), so the step is set from it at every epoch
        for group in loop.optimizer.param_groups:
            group["lr"] = loop.lr * 0.5**self.n_halved

    def on_epoch_end(self, loop, history):
        if len(history.validation_loss) == self.n_checks:
            return
        self.n_checks = len(history.validation_loss)
        value = history.validation_loss[-1]
        if self.n_checks == 1:
            # a gain (the shared count would compare with ``inf - tol · inf``,
            # nan, and count none)
            self.best_value = value
            return
        self._count(value)
        if self.no_change == 0 or self.no_change < self.patience:
            return
        self.no_change = 0
        if self.n_halved >= self.halvings:
            loop.stop("early_stopping")
        else:
            self.n_halved += 1

    def status(self, loop, history):
        return {"step halvings": f"{self.n_halved}/{self.halvings}"}

    def state(self):
        return self.best_value, self.no_change, self.n_halved, self.n_checks

    def restore(self, state):
        self.best_value, self.no_change, self.n_halved, self.n_checks = state


def _restore(params, state):
    with torch.no_grad():
        for p, s in zip(params, state, strict=True):
            p.copy_(s)


def _all_finite(tensors) -> bool:
    """Whether every entry of every tensor is finite.

    One min/max reduction per tensor: ``torch.aminmax`` propagates NaN, and
    an infinite entry is the minimum or the maximum. Unlike
    ``torch.isfinite(p).all()`` it makes no temporaries, about ten times
    faster on a large parameter (AIR-Net's free Laplacian matrices, checked
    after every epoch, took a third of its fit on a 2,000-row table).
    """
    for t in tensors:
        if t.numel() == 0:  # aminmax refuses an empty tensor
            continue
        bounds = torch.stack(torch.aminmax(t.detach()))
        if not bool(torch.isfinite(bounds).all()):
            return False
    return True


def _is_finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")
