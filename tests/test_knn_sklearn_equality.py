"""KNNImputer against scikit-learn's, on tie-heavy data (hypothesis).

Exact equality (to 1e-12) is asserted on data whose nan-euclidean sums
scikit-learn computes exactly: integers and multiples of a power of two of
moderate size, which is where ties are exact and scikit-learn's answer is
well defined. (On data such as decimals, scikit-learn's own Gram-form
rounding decides near-ties, and its answer changes with the rows
transformed together; ours does not, see the row-independence property.)
"""

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.impute import KNNImputer as SklearnKNNImputer

from sklearn_mc import KNNImputer

TOL = {"rtol": 1e-12, "atol": 1e-12}


def _table(rng, n, p, kind, missing):
    if kind == "small integers":
        X = rng.randint(0, rng.randint(1, 4), size=(n, p)).astype(float)
    elif kind == "quarters":
        X = np.round(rng.standard_normal((n, p)) * 4) / 4
    elif kind == "large integers":
        X = rng.randint(-1000, 1000, size=(n, p)) * 1000.0 + 10**6
    else:  # "halves with repeats"
        X = rng.choice([-1.5, 0.0, 0.5, 2.0], size=(n, p))
    X[rng.rand(n, p) < missing] = np.nan
    return X


@st.composite
def problems(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.RandomState(seed)
    n = draw(st.integers(1, 25))
    p = draw(st.integers(1, 6))
    kind = draw(
        st.sampled_from(
            ["small integers", "quarters", "large integers", "halves with repeats"]
        )
    )
    X = _table(rng, n, p, kind, draw(st.floats(0.0, 0.7)))
    duplicates = draw(st.integers(0, n))
    X = np.concatenate([X, X[rng.randint(0, n, duplicates)]])
    if draw(st.booleans()):
        X[rng.randint(0, len(X))] = np.nan  # an all-missing row
    if draw(st.booleans()):
        X[:, rng.randint(0, p)] = np.nan  # an all-missing column
    Y = _table(rng, draw(st.integers(1, 6)), p, kind, 0.4)
    params = {
        "n_neighbors": draw(st.integers(1, len(X) + 2)),
        "weights": draw(st.sampled_from(["uniform", "distance"])),
        "keep_empty_features": draw(st.booleans()),
    }
    knobs = {
        "_chunk_rows": draw(st.sampled_from([None, 1, 2, 3])),
        "_n_candidates": draw(st.sampled_from([None, 1, 2, 4])),
        "_search": draw(st.sampled_from([None, "candidates", "donors"])),
    }
    return X, Y, params, knobs


def _ours(params, knobs):
    # mean_shrinkage=None: scikit-learn's KNNImputer exactly (the default,
    # "auto", blends toward the column mean, see test_knn.py).
    est = KNNImputer(device="cpu", mean_shrinkage=None, **params)
    for name, value in knobs.items():
        setattr(est, name, value)
    return est


@settings(max_examples=150, deadline=None)
@given(problems())
def test_equals_sklearn_on_tie_heavy_data(problem):
    X, Y, params, knobs = problem
    if np.isnan(X).all():
        return
    # Observed values of new rows in columns empty at fit: scikit-learn
    # overwrites them with 0 under keep_empty_features=True, this package
    # keeps them (a deliberate difference, not a KNN matter).
    Y[:, np.isnan(X).all(axis=0)] = np.nan
    est = _ours(params, knobs)
    sk = SklearnKNNImputer(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty-column warnings, both sides
        ours = est.fit_transform(X)
        theirs = sk.fit_transform(X)
        np.testing.assert_allclose(ours, theirs, **TOL)
        np.testing.assert_allclose(est.transform(Y), sk.transform(Y), **TOL)


@st.composite
def splits(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.RandomState(seed)
    n, p = draw(st.integers(2, 30)), draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["small integers", "decimals", "gaussian"]))
    if kind == "small integers":
        X = rng.randint(0, 3, size=(n, p)).astype(float)
    elif kind == "decimals":
        X = np.round(rng.standard_normal((n, p)), 1)
    else:
        X = rng.standard_normal((n, p))
    X = np.concatenate([X, X[rng.randint(0, n, n // 2)]])
    X[rng.rand(*X.shape) < draw(st.floats(0.05, 0.6))] = np.nan
    cuts = np.sort(rng.randint(0, len(X), draw(st.integers(1, 4))))
    order = rng.permutation(len(X))
    params = {
        "n_neighbors": draw(st.integers(1, 8)),
        "weights": draw(st.sampled_from(["uniform", "distance"])),
    }
    knobs = {
        "_chunk_rows": draw(st.sampled_from([None, 1, 3])),
        "_n_candidates": draw(st.sampled_from([None, 1, 3])),
    }
    return X, order, cuts, params, knobs


@settings(max_examples=50, deadline=None)
@given(splits())
def test_rows_completed_independently_of_the_batch(case):
    # Bit for bit, on any data (decimals included, where scikit-learn's own
    # answer moves with the batch): a row's completion depends on that row.
    X, order, cuts, params, knobs = case
    if np.isnan(X).all():
        return
    est = _ours(params, knobs).fit(X)
    whole = est.transform(X)
    pieces = [est.transform(X[part]) for part in np.split(order, cuts) if len(part)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole[order])
