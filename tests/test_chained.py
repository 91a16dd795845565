"""Tests of ChainedImputer's own behaviour (the shared contract is in test_common)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer
from sklearn.linear_model import BayesianRidge
from sklearn.neighbors import KNeighborsRegressor

from sklearn_mc import ChainedImputer
from sklearn_mc.datasets import make_mask

FAST = [("extra_trees", ExtraTreesRegressor(n_estimators=10, n_jobs=1))]
TREES20 = [("extra_trees", ExtraTreesRegressor(n_estimators=20, n_jobs=1))]


def _nonlinear(n=300, seed=0):
    """Columns 1-3 are nonlinear functions of column 0 (a quadratic, a sine)."""
    rng = np.random.RandomState(seed)
    t = rng.uniform(-2, 2, n)
    X = np.column_stack(
        [t, t**2, np.sin(2 * t), np.abs(t), rng.standard_normal(n)]
    ) + 0.05 * rng.standard_normal((n, 5))
    return X


def _linear(n=300, seed=0):
    rng = np.random.RandomState(seed)
    Z = rng.standard_normal((n, 2))
    return Z @ rng.standard_normal((2, 6)) + 0.1 * rng.standard_normal((n, 6))


def _chain(n=300, seed=0):
    """A chain of non-linear links: each column is a function of the previous."""
    rng = np.random.RandomState(seed)
    t = rng.uniform(-2, 2, n)
    cols = [t, np.sin(2 * t), np.abs(t) - 1, t**2 - 1.3, np.tanh(3 * t), np.cos(t)]
    return np.column_stack(cols) + 0.05 * rng.standard_normal((n, len(cols)))


def _hide(X, rate=0.2, seed=1):
    mask = make_mask(X.shape, "random", missing_rate=rate, random_state=seed)
    return np.where(mask, np.nan, X), mask


def _rmse(out, X, mask):
    return float(np.sqrt(np.mean((out[mask] - X[mask]) ** 2)))


def test_picks_trees_on_nonlinear_columns_and_beats_linear_chain():
    X = _nonlinear()
    X_missing, mask = _hide(X)
    est = ChainedImputer(estimators=FAST, n_folds=2, random_state=0)
    out = est.fit_transform(X_missing)
    linear = IterativeImputer(BayesianRidge(), random_state=0).fit_transform(X_missing)
    # t**2 and |t| are not linear in anything observed: trees must be chosen
    assert "extra_trees" in est.chosen_[1] and "extra_trees" in est.chosen_[3]
    nonlinear = mask.copy()
    nonlinear[:, [0, 4]] = False  # t itself and the pure-noise column
    assert _rmse(out, X, nonlinear) < 0.85 * _rmse(linear, X, nonlinear)


def test_keeps_linear_completion_on_linear_data():
    X = _linear()
    X_missing, mask = _hide(X)
    est = ChainedImputer(estimators=FAST, n_folds=2, random_state=0)
    out = est.fit_transform(X_missing)
    linear = IterativeImputer(BayesianRidge(), random_state=0).fit_transform(X_missing)
    assert sum("linear" in c for c in est.chosen_) >= 4
    assert _rmse(out, X, mask) < 1.05 * _rmse(linear, X, mask)


def test_empty_estimator_list_is_chained_bayesian_ridge():
    X = _linear()
    X_missing, mask = _hide(X)
    est = ChainedImputer(
        estimators=[], low_rank=False, max_iter=10, tol=0.0, random_state=0
    )
    out = est.fit_transform(X_missing)
    ref = IterativeImputer(BayesianRidge(), max_iter=10, tol=0.0, random_state=0)
    ref_out = ref.fit_transform(X_missing)
    assert all(c == ("linear",) for c in est.chosen_)
    # same algorithm (sklearn also clips nothing here); standardisation differs
    np.testing.assert_allclose(_rmse(out, X, mask), _rmse(ref_out, X, mask), rtol=0.02)


def test_selection_scores_are_errors_on_rehidden_entries():
    X = _nonlinear()
    X_missing, _ = _hide(X)
    est = ChainedImputer(estimators=FAST, n_folds=2, random_state=0).fit(X_missing)
    for combo, scores in zip(est.chosen_, est.selection_scores_, strict=True):
        assert scores and min(scores, key=scores.get) == "+".join(combo)
        assert all(v >= 0 for v in scores.values())


def test_transform_of_training_rows_matches_fit_transform():
    X = _chain(200)
    X_missing, _ = _hide(X, rate=0.3)
    est = ChainedImputer(estimators=TREES20, n_folds=2, random_state=0)
    out = est.fit_transform(X_missing)
    assert est.refine_estimators_  # the refinement rounds are replayed too
    np.testing.assert_allclose(out, est.transform(X_missing), atol=1e-10)


def test_refinement_rounds_are_chosen_by_held_out_error():
    X = _chain(200)
    X_missing, mask = _hide(X, rate=0.3)
    # the low-rank option is left out: the test isolates the tree refits
    est = ChainedImputer(
        estimators=TREES20, n_folds=2, max_refine=3, low_rank=False, random_state=0
    )
    out = est.fit_transform(X_missing)
    scores = est.refine_scores_
    # each kept round lowered the selection runs' held-out error
    assert 2 <= len(scores) <= 4 and len(est.refine_estimators_) == len(scores) - 1
    assert all(b < a for a, b in zip(scores, scores[1:], strict=False))
    # and the rounds pay on the truly missing entries: trees refitted on their
    # own completion (missForest) beat one tree stage on the linear chain
    single = ChainedImputer(
        estimators=TREES20, n_folds=2, max_refine=0, low_rank=False, random_state=0
    )
    single_out = single.fit_transform(X_missing)
    assert single.refine_estimators_ == [] and len(single.refine_scores_) == 1
    assert _rmse(out, X, mask) < 0.97 * _rmse(single_out, X, mask)


def test_column_complete_at_fit_is_imputed_in_new_rows():
    X = _nonlinear(150)
    X_missing, _ = _hide(X)
    X_missing[:, 1] = X[:, 1]  # column 1 has no missing entry at fit
    est = ChainedImputer(estimators=FAST, n_folds=1, random_state=0).fit(X_missing)
    new = X[:20].copy()
    new[:, 1] = np.nan
    out = est.transform(new)
    mean_err = np.sqrt(np.mean((X[:20, 1] - X[:, 1].mean()) ** 2))
    assert np.sqrt(np.mean((out[:, 1] - X[:20, 1]) ** 2)) < 0.7 * mean_err


def test_tall_table_subsamples_rows():
    X = _nonlinear(600)
    X_missing, _ = _hide(X)
    est = ChainedImputer(
        estimators=FAST, n_folds=1, selection_rows=100, max_fit_rows=150, random_state=0
    ).fit(X_missing)
    trees = (
        est.estimators_[1]["extra_trees"] if "extra_trees" in est.chosen_[1] else None
    )
    if trees is not None:
        assert trees.estimators_[0].tree_.n_node_samples[0] <= 150


def _gaussian_low_rank(n=150, p=12, rank=2, seed=2):
    rng = np.random.RandomState(seed)
    signal = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, p))
    return signal + 0.3 * rng.standard_normal((n, p))


def test_low_rank_blend_is_chosen_on_held_out_entries_and_pays():
    # Half the entries missing in a rank-2 table: the chained regressions run
    # on features that are half imputed, the soft-thresholded SVD fits the
    # structure jointly (Mazumder, Hastie and Tibshirani's SoftImpute).
    X = _gaussian_low_rank()
    X_missing, mask = _hide(X, rate=0.5, seed=3)
    knn = [("knn", KNeighborsRegressor(n_neighbors=5))]
    kwargs = dict(estimators=knn, n_folds=2, max_iter=5, random_state=0)
    with_low = ChainedImputer(**kwargs)
    out = with_low.fit_transform(X_missing)
    without = ChainedImputer(low_rank=False, **kwargs)
    out_without = without.fit_transform(X_missing)
    # the blend comes last: the chained fit and its choices are unchanged
    assert with_low.chosen_ == without.chosen_
    assert with_low.selection_scores_ == without.selection_scores_
    scores = with_low.low_rank_scores_
    assert with_low.low_rank_shrinkage_ == min(scores, key=scores.get)
    weights = with_low.low_rank_weights_
    for w, blend in zip(weights, with_low.low_rank_blend_scores_, strict=True):
        assert w == (min(blend, key=blend.get) if blend else 0.0)
    assert (weights > 0).sum() >= 6
    untouched = np.flatnonzero(weights == 0)
    np.testing.assert_array_equal(out[:, untouched], out_without[:, untouched])
    assert without.low_rank_map_ is None and not without.low_rank_weights_.any()
    assert _rmse(out, X, mask) < 0.95 * _rmse(out_without, X, mask)
    # new rows (here the training rows again) get the same low-rank map
    np.testing.assert_allclose(with_low.transform(X_missing), out, atol=1e-8)


def test_low_rank_completion_is_the_soft_impute_fixed_point():
    from sklearn_mc._chained_low_rank import low_rank_complete, soft_impute_map

    X = _gaussian_low_rank(n=40, p=6)
    X = (X - X.mean(0)) / X.std(0)
    _, hidden = _hide(X, rate=0.3, seed=4)
    observed = ~hidden
    weights = soft_impute_map(X, observed, 0.05)
    np.testing.assert_allclose(weights, weights.T, atol=1e-12)
    eig = np.linalg.eigvalsh(weights)
    assert eig.min() > -1e-10 and eig.max() < 1
    out = low_rank_complete(X, observed, weights)
    np.testing.assert_array_equal(out[observed], X[observed])
    # missing entries satisfy f_m = (f W)_m: the SoftImpute update, W fixed
    np.testing.assert_allclose(out[hidden], (out @ weights)[hidden], atol=1e-10)
    # ... which the frozen update reaches by iteration from the column means
    filled = np.where(observed, X, 0.0)
    for _ in range(2000):
        filled = np.where(observed, X, filled @ weights)
    np.testing.assert_allclose(out, filled, atol=1e-6)


@pytest.mark.parametrize(
    "estimators, match",
    [
        ([("a", object())], "fit and predict"),
        ([("linear", BayesianRidge())], "not 'linear'"),
        ([("a", BayesianRidge()), ("a", BayesianRidge())], "unique"),
        (["tree"], "fit and predict"),
    ],
)
def test_bad_estimators_raise(estimators, match):
    X_missing, _ = _hide(_linear(40))
    with pytest.raises(ValueError, match=match):
        ChainedImputer(estimators=estimators).fit(X_missing)


def test_warns_when_the_linear_rounds_stop_at_max_iter():
    # scikit-learn's rule (IterativeImputer): ConvergenceWarning when the
    # rounds end at max_iter with tol > 0; none with tol=0 or once converged
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    X, _ = _hide(_linear())
    fast = dict(estimators=[], n_folds=1, random_state=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        ChainedImputer(max_iter=1, tol=1e-5, **fast).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ChainedImputer(max_iter=1, tol=0, **fast).fit(X)
        est = ChainedImputer(max_iter=50, tol=1e-3, **fast).fit(X)
    assert est.n_iter_ < 50
