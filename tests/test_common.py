"""Contract tests that every exported imputer must pass (new ones join here)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import all_imputer_classes, make_fast
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

CLASSES = all_imputer_classes()
IDS = [cls.__name__ for cls in CLASSES]


def test_all_seven_imputers_exported():
    import sklearn_mc

    for name in sklearn_mc.__all__:
        assert hasattr(sklearn_mc, name)
    assert len(CLASSES) >= 1


@parametrize_with_checks([make_fast(cls) for cls in CLASSES])
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_observed_kept_and_output_finite(cls, low_rank_with_holes):
    _, X_missing = low_rank_with_holes
    out = make_fast(cls).fit_transform(X_missing)
    observed = ~np.isnan(X_missing)
    assert out.shape == X_missing.shape
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[observed], X_missing[observed])


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_better_than_column_means_on_low_rank(cls, low_rank_with_holes):
    X, X_missing = low_rank_with_holes
    hidden = np.isnan(X_missing)
    out = make_fast(cls).fit_transform(X_missing)
    means = np.where(hidden, np.nanmean(X_missing, axis=0), X_missing)
    err = np.sqrt(np.mean((out[hidden] - X[hidden]) ** 2))
    err_mean = np.sqrt(np.mean((means[hidden] - X[hidden]) ** 2))
    assert err < err_mean


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_transform_rows_are_independent(cls, low_rank_with_holes):
    _, X_missing = low_rank_with_holes
    est = make_fast(cls).fit(X_missing)
    full = est.transform(X_missing)
    perm = np.random.RandomState(0).permutation(X_missing.shape[0])
    np.testing.assert_allclose(est.transform(X_missing[perm]), full[perm], atol=1e-8)
    np.testing.assert_allclose(est.transform(X_missing[:5]), full[:5], atol=1e-8)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_reproducible_with_random_state(cls, low_rank_with_holes):
    _, X_missing = low_rank_with_holes
    a = make_fast(cls, random_state=3).fit_transform(X_missing)
    b = make_fast(cls, random_state=3).fit_transform(X_missing)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_pickle_round_trip(cls, low_rank_with_holes):
    _, X_missing = low_rank_with_holes
    est = make_fast(cls).fit(X_missing)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.transform(X_missing), est.transform(X_missing))


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_pipeline_grid_search_and_cross_val(cls, low_rank_with_holes):
    X, X_missing = low_rank_with_holes
    y = X[:, 0] + 0.1 * np.random.RandomState(0).standard_normal(X.shape[0])
    pipe = make_pipeline(make_fast(cls), Ridge())
    pipe.fit(X_missing, y)
    assert np.isfinite(pipe.predict(X_missing)).all()
    # The imputer's own score makes GridSearchCV work without a scorer.
    grid = GridSearchCV(make_fast(cls), {"random_state": [0, 1]}, cv=2)
    grid.fit(X_missing)
    assert np.isfinite(grid.best_score_) and grid.best_score_ < 0
    scores = cross_val_score(make_fast(cls), X_missing, cv=2)
    assert scores.shape == (2,) and np.isfinite(scores).all()


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_pandas_output(cls, low_rank_with_holes):
    pd = pytest.importorskip("pandas")
    _, X_missing = low_rank_with_holes
    df = pd.DataFrame(X_missing, columns=[f"c{i}" for i in range(X_missing.shape[1])])
    out = make_fast(cls).set_output(transform="pandas").fit_transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(df.columns)
    assert not out.isna().any().any()


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_all_missing_column_dropped_or_kept(cls, low_rank_with_holes):
    _, X_missing = low_rank_with_holes
    X = X_missing.copy()
    X[:, 2] = np.nan
    out = make_fast(cls).fit_transform(X)
    assert out.shape == (X.shape[0], X.shape[1] - 1)
    kept = make_fast(cls, keep_empty_features=True).fit_transform(X)
    assert kept.shape == X.shape
    np.testing.assert_array_equal(kept[:, 2], 0.0)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_bad_input_gives_clear_errors(cls, low_rank_with_holes):
    _, X_missing = low_rank_with_holes
    bad = X_missing.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        make_fast(cls).fit(bad)
    with pytest.raises(ValueError, match="non-numeric"):
        make_fast(cls).fit(np.array([["a", "b"], ["1", "2"]], dtype=object))
    with pytest.raises(ValueError, match="All entries of X are missing"):
        make_fast(cls).fit(np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="0 sample"):
        make_fast(cls).fit(np.empty((0, 3)))
    est = make_fast(cls).fit(X_missing)
    with pytest.raises(ValueError, match="features"):
        est.transform(X_missing[:, :-1])
    with pytest.raises(ValueError, match="device"):
        make_fast(cls, device="tpu").fit(X_missing)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_missing_values_marker(cls, low_rank_with_holes):
    _, X_missing = low_rank_with_holes
    X_marker = np.where(np.isnan(X_missing), -999.0, X_missing)
    a = make_fast(cls).fit_transform(X_missing)
    b = make_fast(cls, missing_values=-999.0).fit_transform(X_marker)
    np.testing.assert_allclose(a, b)


# -------------------------------------------------------- property tests
finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def matrices_with_holes(draw):
    n_rows = draw(st.integers(3, 12))
    n_cols = draw(st.integers(2, 6))
    X = draw(arrays(np.float64, (n_rows, n_cols), elements=finite))
    holes = draw(arrays(bool, (n_rows, n_cols), elements=st.booleans()))
    holes[0] = False  # keep every column observed at least once
    X[holes] = np.nan
    return X


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=matrices_with_holes())
def test_properties_on_random_matrices(cls, X):
    est = make_fast(cls)
    out = est.fit_transform(X)
    observed = ~np.isnan(X)
    assert out.shape == X.shape
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[observed], X[observed])
    perm = np.arange(X.shape[0])[::-1]
    np.testing.assert_allclose(
        est.transform(X[perm]), est.transform(X)[perm], atol=1e-8
    )
