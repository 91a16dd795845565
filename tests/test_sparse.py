"""Sparse input, predict_entries, the dense-size limit and the rating helpers."""

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sklearn_mc import SGDMFImputer
from sklearn_mc._base import BaseMatrixImputer
from sklearn_mc.datasets import make_ratings
from sklearn_mc.ratings import (
    matrix_to_ratings,
    ratings_to_matrix,
    recommend,
    set_dense_limit,
    sparse_to_dense,
)

FAST = dict(rank=3, max_iter=40, random_state=0)


@pytest.fixture(scope="module")
def ratings():
    X = make_ratings(40, 25, density=0.3, random_state=0)
    mask = ~np.isnan(X)
    S = sp.csr_array((X[mask], np.nonzero(mask)), shape=X.shape)
    return X, S


@pytest.fixture(scope="module")
def fitted(ratings):
    X, S = ratings
    return SGDMFImputer(**FAST).fit(S)


# ------------------------------------------------------ dense == sparse
@pytest.mark.parametrize(
    "fmt", [sp.csr_array, sp.csc_array, sp.coo_array, sp.csr_matrix], ids=str
)
def test_sgdmf_dense_and_sparse_give_the_same_completion(ratings, fmt):
    X, S = ratings
    dense = SGDMFImputer(**FAST).fit_transform(X)
    sparse = SGDMFImputer(**FAST).fit_transform(fmt(S))
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=1e-8)


def test_sparse_transform_and_score_match_dense(ratings, fitted):
    X, S = ratings
    dense_est = SGDMFImputer(**FAST).fit(X)
    np.testing.assert_allclose(
        fitted.transform(S), dense_est.transform(X), rtol=0, atol=1e-8
    )
    assert fitted.score(S) == pytest.approx(dense_est.score(X), abs=1e-8)


def test_predict_entries_is_the_completion_at_those_pairs(ratings, fitted):
    X, S = ratings
    full = SGDMFImputer(**FAST).fit_transform(S)
    rng = np.random.RandomState(0)
    r, c = rng.randint(0, X.shape[0], 300), rng.randint(0, X.shape[1], 300)
    pred = fitted.predict_entries(r, c)
    np.testing.assert_allclose(pred, full[r, c], rtol=0, atol=1e-10)
    observed = ~np.isnan(X[r, c])
    assert observed.any()
    np.testing.assert_array_equal(pred[observed], X[r, c][observed])
    # the same after a dense fit
    dense_est = SGDMFImputer(**FAST).fit(X)
    np.testing.assert_allclose(dense_est.predict_entries(r, c), pred, atol=1e-8)


def test_explicit_zero_is_a_rating_and_missing_values_zero_drops_it():
    rng = np.random.RandomState(0)
    X = rng.randint(1, 6, (20, 12)).astype(float)
    X[rng.rand(*X.shape) < 0.5] = np.nan
    X[0, 0] = 0.0  # an observed rating of 0
    mask = ~np.isnan(X)
    S = sp.csr_array((X[mask], np.nonzero(mask)), shape=X.shape)
    assert S.nnz == mask.sum()  # the zero is stored
    est = SGDMFImputer(**FAST)
    out = est.fit_transform(S)
    assert out[0, 0] == 0.0 and est.predict_entries([0], [0])[0] == 0.0
    # with missing_values=0, a stored zero is missing, as in dense input
    est0 = SGDMFImputer(**FAST, missing_values=0)
    out0 = est0.fit_transform(S)
    assert out0[0, 0] != 0.0
    X_nan0 = np.where(np.isnan(X), 0.0, X)  # dense with 0 as the marker
    np.testing.assert_allclose(
        out0, SGDMFImputer(**FAST, missing_values=0).fit_transform(X_nan0), atol=1e-8
    )


def test_empty_column_of_sparse_input(ratings):
    X, S = ratings
    X = X.copy()
    X[:, 3] = np.nan
    mask = ~np.isnan(X)
    S = sp.csr_array((X[mask], np.nonzero(mask)), shape=X.shape)
    for keep in (False, True):
        kw = dict(FAST, keep_empty_features=keep)
        dense = SGDMFImputer(**kw).fit_transform(X)
        est = SGDMFImputer(**kw)
        np.testing.assert_allclose(est.fit_transform(S), dense, atol=1e-8)
        # a cold-start column gets the mean of the observed training values
        pred = est.predict_entries([1, 1], [3, 4])
        assert pred[0] == pytest.approx(np.nanmean(X))
        assert pred[1] == pytest.approx(dense[1, 4 if keep else 3])


# ------------------------------------------------------ bad sparse input
def test_stored_nan_is_refused(ratings):
    S = ratings[1].copy()
    S.data[5] = np.nan
    with pytest.raises(ValueError, match="NaN.*leave missing entries out"):
        SGDMFImputer(**FAST).fit(S)


def test_duplicate_entries_are_refused():
    S = sp.coo_array(([1.0, 2.0, 4.0], ([0, 0, 1], [1, 1, 0])), shape=(3, 3))
    with pytest.raises(ValueError, match="duplicate"):
        SGDMFImputer(**FAST).fit(S)


def test_wrong_shape_at_transform(fitted, ratings):
    S = ratings[1]
    with pytest.raises(ValueError, match="features"):
        fitted.transform(sp.csr_array(S.toarray()[:, :-2]))


def test_empty_sparse_matrix_is_refused():
    with pytest.raises(ValueError, match="stores no entries"):
        SGDMFImputer(**FAST).fit(sp.csr_array((4, 3)))


def test_dense_only_imputer_refuses_sparse_with_a_pointer():
    class DenseOnly(BaseMatrixImputer):
        def __init__(self, missing_values=np.nan, keep_empty_features=False):
            self.missing_values = missing_values
            self.keep_empty_features = keep_empty_features
            self.device, self.random_state, self.verbose = "cpu", None, 0

        def _fit(self, X, mask):
            return np.zeros_like(X)

        def _transform(self, X, mask):
            return np.zeros_like(X)

    S = sp.csr_array(np.eye(3))
    with pytest.raises(TypeError, match="DenseOnly does not accept sparse.*SGDMF"):
        DenseOnly().fit(S)
    est = DenseOnly().fit(np.eye(3))
    with pytest.raises(TypeError, match="does not support predict_entries"):
        est.predict_entries([0], [0])


@pytest.mark.parametrize(
    "rows, cols, match",
    [
        ([-1], [0], "negative"),
        ([0], [99], "outside"),
        ([0, 1], [0], "same length"),
    ],
)
def test_predict_entries_bad_indices(fitted, rows, cols, match):
    with pytest.raises(ValueError, match=match):
        fitted.predict_entries(rows, cols)
    with pytest.raises(TypeError, match="integer"):
        fitted.predict_entries([0.5], [0])


def test_dense_result_limit_names_size_and_alternative(ratings):
    S = ratings[1]
    previous = set_dense_limit(1e-6)
    try:
        est = SGDMFImputer(**FAST)
        with pytest.raises(ValueError, match=r"GB.*predict_entries.*recommend"):
            est.fit_transform(S)
        est.fit(S)  # fitting itself never builds the dense result
        with pytest.raises(ValueError, match="0.0 GB, above the limit"):
            est.transform(S)
        assert est.predict_entries([0], [1]).shape == (1,)
    finally:
        set_dense_limit(previous)
    with pytest.raises(ValueError, match="positive"):
        set_dense_limit(0)


def test_sparse_fit_allocates_no_rows_by_cols_array():
    # 3000 x 2000 float64 would be 48 MB; 3000 entries are a few hundred kB.
    rng = np.random.RandomState(0)
    rows, cols = np.arange(3000), rng.randint(0, 2000, 3000)
    S = sp.csr_array((rng.randint(1, 6, 3000).astype(float), (rows, cols)))
    S.resize((3000, 2000))
    est = SGDMFImputer(rank=2, max_iter=3, random_state=0)
    tracemalloc.start()
    est.fit(S)
    est.predict_entries(rows, cols)
    recommend(est, users=np.arange(10), k=3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8e6, peak


# ------------------------------------------------------ long tables
def test_ratings_to_matrix_and_back_with_arbitrary_ids():
    df = pd.DataFrame(
        {
            "who": ["u9", "u1", "u9", "u5"],
            "what": [300, 7, 7, 300],
            "stars": [4.0, 0.0, 5.0, 2.5],
        }
    )
    S, users, items = ratings_to_matrix(
        df, user_col="who", item_col="what", rating_col="stars"
    )
    assert S.shape == (3, 2) and S.nnz == 4  # the rating of 0 is stored
    assert users.tolist() == ["u1", "u5", "u9"] and items.tolist() == [7, 300]
    assert S[2, 1] == 4.0 and S[0, 0] == 0.0
    back = matrix_to_ratings(S, users, items)
    merged = back.merge(df, left_on=["user", "item"], right_on=["who", "what"])
    np.testing.assert_array_equal(merged["rating"], merged["stars"])
    assert len(back) == 4
    # first three columns by position, and three arrays, give the same matrix
    S2, _, _ = ratings_to_matrix(df)
    S3, _, _ = ratings_to_matrix(users=df.who, items=df.what, ratings=df.stars)
    assert (S2 != S).nnz == 0 and (S3 != S).nnz == 0
    u, i, r = matrix_to_ratings(sparse_to_dense(S), as_frame=False)
    np.testing.assert_array_equal(r, S.data)  # CSR order is row-major


def test_ratings_to_matrix_errors():
    with pytest.raises(ValueError, match=r"duplicate \(user, item\).*'mean'"):
        ratings_to_matrix(users=[1, 1], items=[2, 2], ratings=[3.0, 4.0])
    S, _, _ = ratings_to_matrix(
        users=[1, 1, 2], items=[2, 2, 2], ratings=[3.0, 4.0, 1.0], duplicates="mean"
    )
    assert S[0, 0] == 3.5 and S.nnz == 2
    with pytest.raises(ValueError, match="NaN or infinite.*position 1"):
        ratings_to_matrix(users=[1, 2], items=[2, 2], ratings=[3.0, np.nan])
    with pytest.raises(ValueError, match="negative index -3"):
        ratings_to_matrix(users=[0, -3], items=[1, 1], ratings=[1, 2], encode=False)
    with pytest.raises(ValueError, match="missing values"):
        ratings_to_matrix(users=["a", None], items=[1, 1], ratings=[1, 2])
    with pytest.raises(ValueError, match="same length"):
        ratings_to_matrix(users=[1, 2], items=[1], ratings=[1, 2])
    S, users, _ = ratings_to_matrix(
        users=[0, 4], items=[1, 0], ratings=[1, 2], encode=False
    )
    assert S.shape == (5, 2) and users.tolist() == [0, 1, 2, 3, 4]


# ------------------------------------------------------ recommend
def test_recommend_matches_the_dense_ranking_of_unrated_items(ratings, fitted):
    X, S = ratings
    full = SGDMFImputer(**FAST).fit_transform(S)
    users = np.array([0, 5, 17])
    items, scores = recommend(fitted, users, k=4, chunk_size=2)
    for row, user in enumerate(users):
        unrated = np.flatnonzero(np.isnan(X[user]))
        best = unrated[np.argsort(-full[user, unrated], kind="stable")[:4]]
        np.testing.assert_array_equal(np.sort(items[row]), np.sort(best))
        np.testing.assert_allclose(scores[row], full[user, items[row]], atol=1e-10)
        assert np.all(np.diff(scores[row]) <= 0)
        assert np.isnan(X[user, items[row]]).all()
    with_seen, _ = recommend(fitted, users, k=4, exclude_observed=False)
    assert with_seen.shape == (3, 4)


def test_recommend_pads_when_few_items_are_left():
    X = np.array([[5.0, 4.0, np.nan], [1.0, np.nan, 2.0], [np.nan, 3.0, 3.0]])
    est = SGDMFImputer(rank=1, max_iter=5, random_state=0).fit(X)
    items, scores = recommend(est, [0], k=3)
    assert items[0, 0] == 2 and (items[0, 1:] == -1).all()
    assert np.isnan(scores[0, 1:]).all()
    with pytest.raises(ValueError, match="negative"):
        recommend(est, [-1], k=2)


def test_limits_apply_to_sparse_output_and_pairs(ratings):
    X, S = ratings
    kw = dict(FAST, min_value=2.0, max_value=4.0)
    dense = SGDMFImputer(**kw).fit_transform(X)
    est = SGDMFImputer(**kw)
    np.testing.assert_allclose(est.fit_transform(S), dense, atol=1e-8)
    r, c = np.nonzero(np.isnan(X))
    pred = est.predict_entries(r, c)
    assert pred.min() >= 2.0 and pred.max() <= 4.0
    np.testing.assert_allclose(pred, dense[r, c], atol=1e-8)
    with pytest.raises(ValueError, match="add_indicator=True is not available"):
        SGDMFImputer(**FAST, add_indicator=True).fit(S)
