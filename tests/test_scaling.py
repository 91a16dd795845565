"""The one scaler (``sklearn_mc._scaling``): statistics and maps.

D2 and D7 name the defects of ``RELIABILITY-PROBE.md`` the tests pin (a
relative constant-column cut-off; no overflow near the float64 limit).
"""

import numpy as np
import pytest

from sklearn_mc._scaling import _fit_scaling, _pow2_floor, scaling_from_entries


def test_scaling_constant_cutoff_is_relative_d2():
    # A column of magnitude 1e-13 has std ~1e-13 < the old absolute 1e-12
    # cut-off, which left it unscaled (factor 1) and made the methods impute
    # values 1e8-1e12 times the data.
    rng = np.random.RandomState(0)
    X = rng.randn(30, 3) * 1e-13
    mask = np.ones(X.shape, dtype=bool)
    shift, factor = _fit_scaling(X, mask, "standard")
    np.testing.assert_allclose(factor, X.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(shift, X.mean(axis=0), rtol=1e-12, atol=0)
    # a constant column is divided by its own magnitude, not by 1
    C = np.full((5, 1), 3e-200)
    shift, factor = _fit_scaling(C, np.ones(C.shape, dtype=bool), "standard")
    assert shift[0] == 3e-200 and factor[0] == _pow2_floor(3e-200)


def test_scaling_does_not_overflow_d7():
    # (1e154)**2 overflowed the variance: std became inf for valid float64 data.
    rng = np.random.RandomState(0)
    X = rng.randn(30, 3) * 1e300
    mask = np.ones(X.shape, dtype=bool)
    shift, factor = _fit_scaling(X, mask, "standard")
    assert np.isfinite(factor).all() and np.isfinite(shift).all()
    np.testing.assert_allclose(factor, (X / 1e300).std(axis=0) * 1e300, rtol=1e-12)
    lo, hi = np.array([[-1.7e308], [1.7e308]]), np.ones((2, 1), dtype=bool)
    shift, factor = _fit_scaling(lo, hi, "minmax")
    assert np.isfinite(factor).all() and shift[0] == 0.0


def test_scaling_is_bit_exact_under_powers_of_two():
    rng = np.random.RandomState(1)
    X = rng.randn(20, 4) + 2.0
    mask = rng.rand(*X.shape) > 0.2
    mask[0] = True
    X[~mask] = np.nan
    shift, factor = _fit_scaling(X, mask, "standard")
    for k in (-700, -40, 0, 40, 500):
        s2, f2 = _fit_scaling(X * 2.0**k, mask, "standard")
        np.testing.assert_array_equal(s2, shift * 2.0**k)
        np.testing.assert_array_equal(f2, factor * 2.0**k)


def test_entry_scaling_matches_dense_scaling():
    rng = np.random.RandomState(2)
    X = rng.randn(15, 5) * 1e-150
    mask = rng.rand(*X.shape) > 0.3
    mask[0] = True
    rows, cols = np.nonzero(mask)
    dense = _fit_scaling(np.where(mask, X, np.nan), mask, "standard")
    sparse = scaling_from_entries(X[rows, cols], cols, X.shape[1], "standard")
    np.testing.assert_allclose(sparse[0], dense[0], rtol=1e-12)
    np.testing.assert_allclose(sparse[1], dense[1], rtol=1e-12)


@pytest.mark.parametrize("shape", [(40, 1), (40, 2), (300, 7)], ids=str)
def test_one_scaler_same_bits_for_any_layout_and_for_entries(shape):
    # Issue 12 "one scaler": dense input in C or Fortran order and the same
    # data as observed entries get the same statistics bit for bit (the dense
    # formula summed pairwise along a Fortran-ordered or single column copy).
    rng = np.random.RandomState(3)
    X = rng.randn(*shape) * 10.0 ** rng.uniform(-3, 3, shape[1]) + 7.0
    X[rng.rand(*shape) < 0.3] = np.nan
    X[0] = 1.5
    mask = ~np.isnan(X)
    rows, cols = np.nonzero(mask)
    entries = scaling_from_entries(X[rows, cols], cols, shape[1], "standard")
    for layout in (np.ascontiguousarray(X), np.asfortranarray(X)):
        dense = _fit_scaling(layout, mask, "standard")
        np.testing.assert_array_equal(dense[0], entries[0])
        np.testing.assert_array_equal(dense[1], entries[1])
