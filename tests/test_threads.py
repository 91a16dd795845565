"""``random_state`` under threads: every random draw comes from the fit's own
generator, so concurrent fits in one process give bit-identical results."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from conftest import FAST_PARAMS, all_imputer_classes, make_fast
from joblib import parallel_backend
from sklearn.model_selection import GridSearchCV

from sklearn_mc._torch import draw_seed, fit_generator, fit_rng

#: at most 8 iterations and a fixed SVD rank (no rank search): 9 fits per
#: estimator here.
SHORT = {"max_iter": 8, "rank": 2}
N_THREADS = 8

# Short fits stop at max_iter on purpose (warnings.catch_warnings is not
# thread-safe, so the filter is set for the whole module).
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data():
    rng = np.random.RandomState(3)
    X = rng.randn(24, 3) @ rng.randn(3, 8) + 0.1 * rng.randn(24, 8)
    X[rng.rand(*X.shape) < 0.25] = np.nan
    return X


def _short(cls, **params):
    valid = cls().get_params()
    fast = FAST_PARAMS.get(cls.__name__, {})
    short = {**SHORT, "max_iter": min(SHORT["max_iter"], fast.get("max_iter", 8))}
    params = {**short, **params}
    return make_fast(cls, **{k: v for k, v in params.items() if k in valid})


def _fit_transform(cls, X, seed=0):
    return _short(cls, random_state=seed).fit_transform(X)


@pytest.mark.parametrize("cls", all_imputer_classes(), ids=lambda c: c.__name__)
def test_concurrent_fits_are_bit_identical(cls):
    # Two seeds, alternating: a draw from a stream another fit has reseeded
    # would show (fits with one seed only would reseed it to the same value).
    X = _data()
    seeds = [0, 1] * (N_THREADS // 2)
    reference = {seed: _fit_transform(cls, X, seed) for seed in (0, 1)}
    with ThreadPoolExecutor(N_THREADS) as pool:
        outputs = list(pool.map(lambda seed: _fit_transform(cls, X, seed), seeds))
    for seed, out in zip(seeds, outputs, strict=True):
        np.testing.assert_array_equal(out, reference[seed])


@pytest.mark.parametrize("cls", all_imputer_classes(), ids=lambda c: c.__name__)
def test_fit_neither_reads_nor_moves_the_global_torch_generator(cls):
    X = _data()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = _fit_transform(cls, X)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(456)  # a different global stream must not matter
    np.testing.assert_array_equal(_fit_transform(cls, X), first)


def test_grid_search_with_threads_is_reproducible():
    from sklearn_mc import DMFImputer

    X = _data()
    grid = {"latent_dim": [2, 4]}

    def scores():
        search = GridSearchCV(
            DMFImputer(max_iter=3, hidden_layer_sizes=(8,), random_state=0),
            grid,
            cv=3,
            n_jobs=4,
        )
        with parallel_backend("threading", n_jobs=4):
            search.fit(X)
        return search.cv_results_["mean_test_score"]

    first = scores()
    sequential = GridSearchCV(
        DMFImputer(max_iter=3, hidden_layer_sizes=(8,), random_state=0), grid, cv=3
    )
    sequential.fit(X)
    np.testing.assert_array_equal(first, scores())
    np.testing.assert_array_equal(first, sequential.cv_results_["mean_test_score"])


def test_fit_generator_is_private_to_the_block_and_the_thread():
    with pytest.raises(RuntimeError, match="outside a fit"):
        fit_generator()
    with fit_rng(7) as outer:
        assert fit_generator() is outer
        with ThreadPoolExecutor(1) as pool:
            other = pool.submit(lambda: _seed_or_error()).result()
        assert other == "outside"
        with fit_rng(8) as inner:
            assert fit_generator() is inner
        assert fit_generator() is outer
        a = draw_seed()
    with fit_rng(7):
        assert draw_seed() == a


def _seed_or_error():
    try:
        return draw_seed()
    except RuntimeError:
        return "outside"
