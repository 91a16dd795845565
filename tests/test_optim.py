import os
import sys
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from sklearn_mc import _optim
from sklearn_mc._callbacks import FINAL_FACTOR
from sklearn_mc._optim import DivergenceError, train
from sklearn_mc._torch import make_generator

sys.path.insert(0, os.path.dirname(__file__))
from conftest import make_fast  # noqa: E402


def _regression(n=200, seed=0):
    gen = make_generator(seed)
    A = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    w_true = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    return A, A @ w_true, w_true


def _loss(A, y, w):
    def loss_fn(idx):
        rows = slice(None) if idx is None else idx
        return ((A[rows] @ w - y[rows]) ** 2).mean()

    return loss_fn


@pytest.mark.parametrize("batch_size", [None, 64])
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_train_fits_least_squares(batch_size, optimizer):
    A, y, w_true = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    result = train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=batch_size,
        max_iter=200,
        learning_rate=0.05,
        optimizer=optimizer,
        generator=make_generator(0),
        tol=0,
        n_iter_no_change=1000,
    )
    assert result.n_iter == 200
    assert torch.allclose(w.detach(), w_true, atol=1e-2)


def test_early_stopping_restores_best_validation_state():
    A, y, _ = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    history = []

    def validation():
        # A held-out loss that is best after epoch 6 and worse afterwards (the
        # first call is the starting state's).
        value = abs(len(history) - 6) + 1.0
        history.append(w.detach().clone())
        return value

    result = train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=None,
        max_iter=100,
        learning_rate=0.01,
        generator=make_generator(0),
        validation_fn=validation,
        n_iter_no_change=3,
    )
    assert result.stop_reason == "early_stopping"
    assert result.best_iter == 6
    assert result.n_iter == 9
    assert result.validation_iter == list(range(1, 10))
    assert torch.equal(w.detach(), history[6])


def test_divergence_is_recovered_by_halving_the_step():
    A, y, w_true = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    result = train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=None,
        max_iter=300,
        learning_rate=50.0,
        optimizer="sgd",
        generator=make_generator(0),
        tol=0,
        n_iter_no_change=1000,
    )
    assert result.learning_rate < 50.0
    assert torch.isfinite(w).all()


def test_hopeless_divergence_raises():
    w = torch.ones(2, dtype=torch.float64, requires_grad=True)

    def loss_fn(idx):
        return (w * float("nan")).sum()

    with pytest.raises(DivergenceError, match="diverged"):
        train(
            [w],
            loss_fn,
            n_samples=1,
            batch_size=None,
            max_iter=10,
            learning_rate=1.0,
            generator=make_generator(0),
        )
    assert torch.isfinite(w).all()


# ----------------------------------------------------------- divergence (D3)
def _explosive(lr, max_iter, **kwargs):
    """Plain SGD on least squares with a step far beyond 2 / curvature."""
    A, y, _ = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    result = train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=None,
        max_iter=max_iter,
        learning_rate=lr,
        optimizer="sgd",
        generator=make_generator(0),
        tol=0,
        n_iter_no_change=1000,
        **kwargs,
    )
    return w, result


@pytest.mark.parametrize("max_iter", [1, 2, 5])
def test_the_last_step_is_checked_for_divergence(max_iter):
    # One step at lr 1e6 explodes; before, the state after the last step was
    # never evaluated, so max_iter=1 returned it.
    with pytest.raises(DivergenceError, match="diverged"):
        _explosive(1e6, max_iter)


@pytest.mark.parametrize("max_iter", [1, 2, 5])
def test_a_final_state_worse_than_the_start_is_rewound(max_iter):
    # lr 4 is about 4x too large: rewinds halve it until the fit improves.
    w, result = _explosive(4.0, max_iter)
    assert result.n_rewinds > 0
    assert result.learning_rate < 4.0
    assert result.n_iter == max_iter == len(result.train_loss)
    assert result.final_loss <= FINAL_FACTOR * result.train_loss[0]
    assert torch.isfinite(w).all()


def test_a_non_finite_held_out_loss_rewinds():
    A, y, _ = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    calls = []

    def validation():
        calls.append(1)
        return float("nan") if len(calls) == 3 else 1.0 / len(calls)

    result = train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=None,
        max_iter=4,
        learning_rate=0.01,
        generator=make_generator(0),
        validation_fn=validation,
    )
    assert result.n_rewinds == 1
    assert result.n_iter == 4
    assert all(v == v for v in result.validation_loss)


def test_early_stopping_keeps_the_start_when_no_check_beats_it():
    A, y, _ = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    calls = []

    def validation():  # the start is best on the held-out entries
        calls.append(1)
        return float(len(calls))

    result = train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=None,
        max_iter=50,
        learning_rate=0.01,
        generator=make_generator(0),
        validation_fn=validation,
        n_iter_no_change=3,
    )
    assert result.best_iter == 0
    assert result.best_loss == result.start_validation_loss == 1.0
    assert torch.equal(w.detach(), torch.zeros(3, dtype=torch.float64))


DIVERGING = [
    "SGDMFImputer",
    "DeepMFImputer",
    "AIRNetImputer",
    "MLPImputer",
    "DMFImputer",
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("max_iter", [1, 2, 5])
@pytest.mark.parametrize("lr", [100.0, 1e6])
@pytest.mark.parametrize("name", DIVERGING)
def test_a_too_large_learning_rate_never_returns_garbage(name, lr, max_iter):
    import sklearn_mc

    rng = np.random.RandomState(0)
    X = rng.randn(20, 2) @ rng.randn(2, 6) + 1.0
    X[rng.rand(*X.shape) < 0.25] = np.nan
    est = make_fast(getattr(sklearn_mc, name), learning_rate=lr, max_iter=max_iter)
    try:
        out = est.fit_transform(X)
    except DivergenceError:
        return
    # A fit that returns was rewound to a state no worse than its start.
    low, high = np.nanmin(X), np.nanmax(X)
    span = high - low
    assert np.all((out >= low - span) & (out <= high + span))
    assert est.history_.final_loss <= FINAL_FACTOR * est.history_.train_loss[0]


# ------------------------------------------------- convergence and history
def _train_least_squares(w, A, y, max_iter, learning_rate=0.05, **kwargs):
    """Full-batch :func:`train` of ``w`` on ``mean((A w - y)**2)``."""
    return train(
        [w],
        _loss(A, y, w),
        n_samples=len(y),
        batch_size=None,
        max_iter=max_iter,
        learning_rate=learning_rate,
        generator=make_generator(0),
        **kwargs,
    )


def _least_squares(max_iter, tol, **kwargs):
    A, y, _ = _regression()
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    return _train_least_squares(w, A, y, max_iter, tol=tol, **kwargs)


def test_stopping_at_max_iter_with_tol_warns():
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        result = _least_squares(3, 1e-4)
    assert result.stop_reason == "max_iter"


def test_no_convergence_warning_with_tol_zero_or_when_converged():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert _least_squares(3, 0.0).stop_reason == "max_iter"
        result = _least_squares(5000, 1e-2, n_iter_no_change=2)
    assert result.stop_reason == "converged"
    assert result.n_iter < 5000


def test_n_iter_no_change_none_means_no_plateau_rule():
    # tol=0.5 with a patience of 2 converges within a few epochs (above);
    # None switches the rule off, so the whole budget runs, and stopping
    # there with tol > 0 still warns.
    with pytest.warns(ConvergenceWarning, match="max_iter=40"):
        result = _least_squares(40, 0.5, n_iter_no_change=None)
    assert result.stop_reason == "max_iter" and result.n_iter == 40
    # a method's own rule still ends training
    result = _least_squares(40, 0.5, n_iter_no_change=None, stop_fn=lambda e: e == 7)
    assert result.stop_reason == "converged" and result.n_iter == 7


def test_n_iter_no_change_none_is_refused_with_early_stopping():
    with pytest.raises(ValueError, match="needs a patience"):
        _least_squares(5, 1e-4, n_iter_no_change=None, validation_fn=lambda: 1.0)


@pytest.mark.parametrize("name", DIVERGING)
def test_every_gradient_imputer_warns_at_max_iter(name):
    import sklearn_mc

    est = make_fast(getattr(sklearn_mc, name), max_iter=2)
    X = _holes()
    with pytest.warns(ConvergenceWarning, match=f"{name} stopped at max_iter=2"):
        est.fit(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", DIVERGING)
def test_every_gradient_imputer_exposes_the_same_history(name):
    import sklearn_mc

    est = make_fast(getattr(sklearn_mc, name)).fit(_holes())
    hist = est.history_
    assert est.n_iter_ == hist.n_iter == len(est.loss_curve_) >= 1
    assert est.stop_reason_ in {"max_iter", "early_stopping", "converged"}
    assert 0 <= est.best_iter_ <= est.n_iter_
    assert est.validation_loss_curve_ == hist.validation_loss
    assert len(hist.validation_iter) == len(hist.validation_loss)
    assert np.isfinite(hist.final_loss)
    assert name in hist.summary(name)


def _holes():
    rng = np.random.RandomState(0)
    X = rng.randn(20, 2) @ rng.randn(2, 6)
    X[rng.rand(*X.shape) < 0.25] = np.nan
    return X


def test_default_callbacks_follow_the_keywords():
    def kinds(**kwargs):
        return [type(c).__name__ for c in _optim.default_callbacks(**kwargs)]

    assert kinds(max_iter=20) == ["DivergenceMonitor", "Plateau"]
    # a patience beyond the budget could never stop the loop: no Plateau
    assert kinds(max_iter=5, n_iter_no_change=6) == ["DivergenceMonitor"]
    assert kinds(max_iter=5, n_iter_no_change=None) == ["DivergenceMonitor"]
    assert kinds(
        max_iter=5,
        validation_fn=lambda: 0.0,
        on_epoch_start=print,
        stop_fn=bool,
    ) == ["DivergenceMonitor", "EarlyStopping", "Schedule", "StopWhen"]
