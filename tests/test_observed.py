"""Tests of ObservedEntries, the one container of observed entries."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sklearn_mc._observed import ObservedEntries
from sklearn_mc.model_selection import hide_entries


def _dense(seed=0, shape=(7, 5), p=0.5):
    rng = np.random.RandomState(seed)
    X = rng.randn(*shape)
    X[rng.rand(*shape) < p] = np.nan
    return X


def test_from_dense_row_major_and_counts():
    X = _dense()
    e = ObservedEntries.from_dense(X)
    rows, cols = np.nonzero(~np.isnan(X))
    np.testing.assert_array_equal(e.rows, rows)
    np.testing.assert_array_equal(e.cols, cols)
    np.testing.assert_array_equal(e.values, X[rows, cols])
    assert e.rows.dtype == np.int64 and e.cols.dtype == np.int64
    # compact (a dense fit's kept entries): int32 where the shape allows,
    # 16 bytes per entry instead of 24; the same entries
    c = ObservedEntries.from_dense(X, compact=True)
    assert c.rows.dtype == np.int32 and c.cols.dtype == np.int32
    np.testing.assert_array_equal(c.rows, rows)
    np.testing.assert_array_equal(c.cols, cols)
    assert e.shape == X.shape and e.n_observed == len(e) == rows.size
    np.testing.assert_array_equal(e.row_counts(), (~np.isnan(X)).sum(1))
    np.testing.assert_array_equal(e.col_counts(), (~np.isnan(X)).sum(0))
    np.testing.assert_array_equal(e.to_dense(), X)


def test_column_stats_match_nan_reductions():
    X = _dense(1)
    X[:, 2] = np.nan
    mean, std = ObservedEntries.from_dense(X).column_stats()
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        np.testing.assert_allclose(mean, np.nanmean(X, 0), rtol=1e-13)
        np.testing.assert_allclose(std, np.nanstd(X, 0), rtol=1e-12, atol=1e-15)
    assert np.isnan(mean[2]) and np.isnan(std[2])


@pytest.mark.parametrize(
    "fmt", [sp.csr_array, sp.csc_array, sp.coo_array, sp.csr_matrix, sp.lil_matrix]
)
def test_from_sparse_any_format_keeps_explicit_zeros(fmt):
    rows, cols = np.array([2, 0, 1, 0]), np.array([1, 0, 2, 2])
    vals = np.array([3.0, 0.0, 1.5, -2.0])  # (0, 0) is an explicit rating of 0
    S = fmt(sp.coo_array((vals, (rows, cols)), shape=(3, 4)))
    e = ObservedEntries.from_sparse(S)
    assert e.shape == (3, 4) and e.n_observed == 4
    np.testing.assert_array_equal(e.rows, [0, 0, 1, 2])
    np.testing.assert_array_equal(e.cols, [0, 2, 2, 1])
    np.testing.assert_array_equal(e.values, [0.0, -2.0, 1.5, 3.0])


def test_float32_kept_ints_become_float64():
    S32 = sp.csr_array(np.eye(3, dtype=np.float32))
    assert ObservedEntries.from_sparse(S32).values.dtype == np.float32
    Si = sp.csr_array(np.eye(3, dtype=np.int64))
    assert ObservedEntries.from_sparse(Si).values.dtype == np.float64


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_from_sparse_rejects_stored_non_finite(bad, word):
    S = sp.coo_array(([1.0, bad], ([0, 1], [1, 0])), shape=(2, 2))
    with pytest.raises(ValueError, match=f"{word}.*leave missing entries out"):
        ObservedEntries.from_sparse(S)


def test_from_sparse_rejects_duplicates():
    S = sp.coo_array(([1.0, 2.0, 3.0], ([0, 1, 0], [1, 0, 1])), shape=(2, 2))
    with pytest.raises(ValueError, match=r"1 duplicate .*\(0, 1\)"):
        ObservedEntries.from_sparse(S)


def test_from_sparse_rejects_dense_and_non_numeric():
    with pytest.raises(TypeError, match="scipy.sparse"):
        ObservedEntries.from_sparse(np.eye(2))
    with pytest.raises(TypeError, match="numeric"):
        ObservedEntries.from_sparse(sp.csr_array(np.eye(2, dtype=complex)))


@pytest.mark.parametrize(
    "rows, cols, match",
    [
        ([0, -1], [0, 1], "row index -1 .*negative"),
        ([0, 1], [0, 5], r"column index 5 outside \[0, 3\)"),
        ([0, 1, 2], [0, 1], "different lengths"),
    ],
)
def test_from_coo_index_errors(rows, cols, match):
    with pytest.raises(ValueError, match=match):
        ObservedEntries.from_coo(rows, cols, np.ones(len(rows)), (2, 3))


def test_from_dense_rejects_inf_and_bad_ndim():
    with pytest.raises(ValueError, match="infinite"):
        ObservedEntries.from_dense(np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match="2-D"):
        ObservedEntries.from_dense(np.ones(3))


def test_split_is_the_dense_hold_out_rule():
    X = _dense(2, (20, 15), 0.4)
    e = ObservedEntries.from_dense(X)
    train, val = e.split(0.2, random_state=3)
    _, hidden = hide_entries(X, fraction=0.2, random_state=3)
    np.testing.assert_array_equal(~np.isnan(val.to_dense()), hidden)
    assert train.n_observed + val.n_observed == e.n_observed
    both = np.concatenate([train.rows * 15 + train.cols, val.rows * 15 + val.cols])
    assert np.unique(both).size == e.n_observed
    again = e.split(0.2, random_state=3)[1]
    np.testing.assert_array_equal(again.values, val.values)


def test_lookup_subset_select_and_slices():
    X = _dense(3, (6, 4), 0.5)
    X[:, 1] = np.nan
    e = ObservedEntries.from_dense(X)
    r = np.array([0, 1, 2, 3, 4, 5, 5])
    c = np.array([0, 1, 2, 3, 0, 3, 2])
    found, values = e.lookup(r, c)
    np.testing.assert_array_equal(found, ~np.isnan(X[r, c]))
    np.testing.assert_array_equal(values[found], X[r, c][found])
    kept = e.select_columns(e.col_counts() > 0)
    np.testing.assert_array_equal(kept.to_dense(), X[:, [0, 2, 3]])
    part = e.row_slice(2, 5)
    np.testing.assert_array_equal(part.to_dense(), X[2:5])
    with pytest.raises(ValueError, match="one entry per"):
        e.with_values(np.ones(e.n_observed + 1))
    empty = ObservedEntries.from_dense(np.full((2, 2), np.nan))
    assert not empty.lookup([0], [0])[0][0]


def test_conversions_round_trip():
    X = _dense(4)
    e = ObservedEntries.from_dense(X)
    for S in (e.to_csr(), e.to_csc()):
        back = ObservedEntries.from_sparse(S)
        np.testing.assert_array_equal(back.values, e.values)
        np.testing.assert_array_equal(back.cols, e.cols)
    r, c, v = e.to_torch("cpu", torch.float32)
    assert r.dtype == torch.int64 and v.dtype == torch.float32
    np.testing.assert_allclose(v.numpy(), e.values, rtol=1e-6)


def test_lookup_keys_do_not_overflow_with_int32_indices():
    # Issue 14: dense input's entries carry int32 indices; the row-major keys
    # (row * n_cols + col) must still be formed in int64 (2**20 * 2**12 is
    # past the int32 range, which wrapped the keys and missed every entry).
    shape = (2**20, 2**12)
    rows = np.array([5, 2**20 - 1], dtype=np.int32)
    cols = np.array([7, 2**12 - 1], dtype=np.int32)
    e = ObservedEntries(rows, cols, np.array([1.5, -2.0]), shape)
    found, values = e.lookup([5, 2**20 - 1, 3], [7, 2**12 - 1, 7])
    np.testing.assert_array_equal(found, [True, True, False])
    np.testing.assert_array_equal(values, [1.5, -2.0, 0.0])


def test_index_dtype_is_int32_below_two_to_the_31():
    from sklearn_mc._observed import index_dtype

    assert index_dtype((100_000, 50)) == np.int32
    assert index_dtype((2**31 - 1, 3)) == np.int32
    assert index_dtype((2**31, 3)) == np.int64
    # select_columns keeps the compact dtype
    X = _dense()
    X[:, 1] = np.nan
    e = ObservedEntries.from_dense(X, compact=True)
    kept = e.select_columns(e.col_counts() > 0)
    assert kept.cols.dtype == np.int32
    np.testing.assert_array_equal(kept.to_dense(), np.delete(X, 1, axis=1))


@pytest.mark.parametrize("error", [OSError, AttributeError, TypeError])
def test_trim_heap_is_a_no_op_without_glibc(monkeypatch, error):
    # macOS has no malloc_trim (AttributeError); Windows refuses CDLL(None)
    # (TypeError): trimming must then do nothing rather than fail a fit
    import ctypes

    from sklearn_mc import _observed

    def no_libc(name):
        raise error("no such library")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    monkeypatch.setattr(_observed, "_LIBC", [None])
    _observed.trim_heap()
    assert _observed._LIBC == [False]
