"""KNNImputer's shrinkage toward the column mean: the weights chosen on
held-out entries (``mean_shrinkage="auto"``, ``sklearn_mc._knn_holdout``),
fixed weights and none."""

import os
import sys
import warnings

import numpy as np
import pytest

from sklearn_mc import KNNImputer

sys.path.insert(0, os.path.dirname(__file__))
from test_knn import _random_problem  # noqa: E402


def _rmse(out, X, hidden):
    return np.sqrt(np.mean((out[hidden] - X[hidden]) ** 2))


@pytest.mark.parametrize("n, p, rate", [(200, 5, 0.5), (400, 10, 0.3), (150, 4, 0.6)])
def test_default_not_worse_than_mean_on_noise_columns(n, p, rate):
    # Independent columns: a neighbour average is the mean of k draws of the
    # column, RMSE ~ sqrt(1 + 1/k) times the mean's. The default shrinks it
    # back to the mean (old code: scikit-learn's rule, 5-10 % worse).
    rng = np.random.RandomState(n + p)
    X = rng.standard_normal((n, p))
    hidden = rng.rand(n, p) < rate
    X_missing = np.where(hidden, np.nan, X)
    mean = _rmse(np.where(hidden, np.nanmean(X_missing, 0), X), X, hidden)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # columns shrunk to the mean
        auto = KNNImputer(random_state=0, device="cpu").fit_transform(X_missing)
    plain = KNNImputer(mean_shrinkage=None, device="cpu").fit_transform(X_missing)
    assert _rmse(plain, X, hidden) > 1.05 * mean  # the problem is real here
    assert _rmse(auto, X, hidden) < 1.02 * mean


@pytest.mark.parametrize("n, p, rate", [(240, 6, 0.2), (160, 12, 0.5)])
def test_default_keeps_knn_on_neighbour_structure(n, p, rate):
    # Rows in tight, well separated clusters: the neighbours predict far
    # better than the mean and the blend keeps them (w near 1).
    rng = np.random.RandomState(p)
    centres = 3 * rng.standard_normal((8, p))
    X = centres[rng.randint(0, 8, n)] + 0.1 * rng.standard_normal((n, p))
    hidden = rng.rand(n, p) < rate
    X_missing = np.where(hidden, np.nan, X)
    est = KNNImputer(random_state=0, device="cpu")
    auto = est.fit_transform(X_missing)
    plain = KNNImputer(mean_shrinkage=None, device="cpu").fit_transform(X_missing)
    assert (est.blend_weights_ > 0.95).all()
    assert _rmse(auto, X, hidden) < 1.01 * _rmse(plain, X, hidden)
    mean = _rmse(np.where(hidden, np.nanmean(X_missing, 0), X), X, hidden)
    assert _rmse(auto, X, hidden) < 0.3 * mean


def _parity_table(n_pairs=60, seed=0):
    # Rows come in near-duplicate pairs (columns a-f); column "parity" is
    # +0.1 in one row of a pair and -0.1 in the other (small, so the partner
    # stays the nearest row), so a row's nearest neighbour holds minus its
    # value: anti-predictive. A row that were its own donor would predict it
    # exactly instead.
    import pandas as pd

    rng = np.random.RandomState(seed)
    base = 5 * rng.standard_normal((n_pairs, 6))
    X = np.repeat(base, 2, axis=0) + 0.01 * rng.standard_normal((2 * n_pairs, 6))
    parity = np.tile([0.1, -0.1], n_pairs)
    X = np.column_stack([X, parity])
    X[rng.rand(2 * n_pairs) < 0.1, 0] = np.nan
    return pd.DataFrame(X, columns=[*"abcdef", "parity"])


def test_anti_predictive_column_shrunk_to_mean_with_a_warning():
    frame = _parity_table()
    est = KNNImputer(n_neighbors=1, random_state=0, device="cpu")
    with pytest.warns(UserWarning, match=r"in 1 column\(s\) \(parity\)"):
        est.fit(frame)
    assert est.blend_weights_[6] == 0.0 and (est.blend_weights_[:6] > 0.5).all()
    Y = frame.iloc[:4].copy()
    Y.iloc[:, 6] = np.nan
    np.testing.assert_allclose(est.transform(Y)[:, 6], frame["parity"].mean())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning without shrinkage
        plain = KNNImputer(n_neighbors=1, mean_shrinkage=None, device="cpu")
        plain.fit(frame)
    np.testing.assert_array_equal(plain.blend_weights_, 1.0)


def test_shrinkage_reproducible_and_fit_data_restored():
    X, Y = _random_problem(13, n=80, p=5, rate=0.4)
    a = KNNImputer(random_state=3, device="cpu")
    b = KNNImputer(random_state=3, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = a.fit_transform(X)
        b.fit(X)
    np.testing.assert_array_equal(a.blend_weights_, b.blend_weights_)
    np.testing.assert_array_equal(b.transform(X), out)
    np.testing.assert_array_equal(b.transform(Y), a.transform(Y))
    # The held-out entries were hidden in place and put back, bit for bit.
    np.testing.assert_array_equal(b._mask_fit_X, ~np.isnan(X))
    np.testing.assert_array_equal(np.isnan(b._fit_X), np.isnan(X))
    plain = KNNImputer(mean_shrinkage=None, device="cpu").fit(X)
    np.testing.assert_array_equal(b._fit_X, plain._fit_X)
    # Rows stay independent of the batch.
    np.testing.assert_array_equal(b.transform(Y[3:4]), b.transform(Y)[3:4])


def test_fixed_and_disabled_shrinkage():
    X, Y = _random_problem(14, n=50, p=4, rate=0.3)
    mean = np.nanmean(X, axis=0)
    plain = KNNImputer(mean_shrinkage=None, device="cpu").fit(X).transform(Y)
    for off in (False, 0, 0.0):
        est = KNNImputer(mean_shrinkage=off, device="cpu").fit(X)
        np.testing.assert_array_equal(est.transform(Y), plain)
    half = KNNImputer(mean_shrinkage=0.5, device="cpu").fit(X)
    np.testing.assert_array_equal(half.blend_weights_, 0.5)
    missing = np.isnan(Y)
    expected = np.where(missing, mean + 0.5 * (plain - mean), Y)
    np.testing.assert_allclose(half.transform(Y), expected, rtol=1e-12, atol=1e-12)
    full = KNNImputer(mean_shrinkage=1.0, device="cpu").fit(X).transform(Y)
    np.testing.assert_allclose(full, np.where(missing, mean, Y), rtol=1e-12)
    with pytest.raises(ValueError, match="mean_shrinkage"):
        KNNImputer(mean_shrinkage=1.5).fit(X)
    with pytest.raises(ValueError, match="mean_shrinkage"):
        KNNImputer(mean_shrinkage="always").fit(X)


@pytest.mark.parametrize("n, n_folds", [(200, 1), (40, 2), (12, 5)])
def test_held_out_work_is_bounded(monkeypatch, n, n_folds):
    # At most HOLDOUT_BUDGET row completions: min(n, budget) rows, as many
    # folds of their entries as the budget allows, one group per pass.
    import sklearn_mc._knn_holdout as knn

    monkeypatch.setattr(knn, "HOLDOUT_BUDGET", 80)
    queries = []
    original = KNNImputer._impute_from_rows

    def spy(self, X, mask, rows, out):
        queries.append(len(X))
        return original(self, X, mask, rows, out)

    monkeypatch.setattr(KNNImputer, "_impute_from_rows", spy)
    X, _ = _random_problem(15, n=n, p=6, rate=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        KNNImputer(random_state=0, device="cpu").fit(X)
    assert len(queries) == knn.HOLDOUT_GROUPS * n_folds
    assert sum(queries) <= 80 and max(queries) <= -(-min(n, 80) // 4)


def test_shrinkage_edge_cases():
    nan = np.nan
    # A column with one donor (never hidden), an all-missing row, one row.
    X = np.array([[1.0, 2, nan], [2, nan, 5], [nan, nan, nan], [4, 3, nan]])
    est = KNNImputer(n_neighbors=2, random_state=0, device="cpu")
    out = est.fit_transform(X)
    assert np.isfinite(out).all() and np.isfinite(est.blend_weights_).all()
    assert ((0 <= est.blend_weights_) & (est.blend_weights_ <= 1)).all()
    one = KNNImputer(random_state=0, device="cpu").fit_transform([[1.0, nan, 3]])
    np.testing.assert_array_equal(one, [[1.0, 3.0]])
    # Columns empty at fit: NaN weight, the column kept as zeros.
    X_empty = np.column_stack([X[:, :2], np.full(4, nan)])
    est = KNNImputer(keep_empty_features=True, random_state=0, device="cpu")
    est.fit(X_empty)
    assert np.isnan(est.blend_weights_[2]) and np.isfinite(est.blend_weights_[:2]).all()


@pytest.mark.parametrize(
    "params",
    [{"axis": "features", "n_neighbors": 1}, {"max_donors": 40, "n_neighbors": 3}],
)
def test_shrinkage_with_other_modes(params):
    rng = np.random.RandomState(16)
    z = rng.standard_normal((120, 1))
    X = np.column_stack([z, 2 * z, 0.5 * z, rng.standard_normal((120, 1))])
    X += 0.05 * rng.standard_normal(X.shape)
    hidden = rng.rand(*X.shape) < 0.3
    X_missing = np.where(hidden, np.nan, X)
    est = KNNImputer(random_state=0, device="cpu", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = est.fit_transform(X_missing)
    w = est.blend_weights_
    assert ((0 <= w) & (w <= 1)).all()
    assert (w[:3] > 0.7).all() and w[3] < 0.5  # the noise column is shrunk
    plain = KNNImputer(mean_shrinkage=None, device="cpu", **params)
    plain_out = plain.fit_transform(X_missing)
    noise = np.zeros_like(hidden)
    noise[:, 3] = hidden[:, 3]
    assert _rmse(out, X, noise) <= _rmse(plain_out, X, noise)
