import pytest
import torch

from sklearn_mc._optim import DivergenceError, train
from sklearn_mc._torch import make_generator


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
        # A validation loss that is best at epoch 5 and worse afterwards.
        value = abs(len(history) - 5) + 1.0
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
    assert torch.equal(w.detach(), history[5])


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
