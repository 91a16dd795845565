"""The input checks of ``sklearn_mc._validation``, called directly.

Through the estimators they are covered by ``test_base.py`` (pandas ``NA``,
bounds, raw units) and ``test_common.py`` (non-numeric, all-missing input);
these pin the branches that no estimator-level test reaches.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from sklearn_mc._validation import (
    RAW_UNITS_MAX,
    _check_any_observed,
    _check_limits,
    _check_raw_units,
    _is_nan_marker,
    _pandas_na_to_nan,
    _validate_dense,
)


class _Params(BaseEstimator):
    """The parameters the checks read, on an estimator ``validate_data`` accepts."""

    def __init__(
        self, missing_values=np.nan, min_value=None, max_value=None, scaling="none"
    ):
        self.missing_values = missing_values
        self.min_value = min_value
        self.max_value = max_value
        self.scaling = scaling

    _scaling = "none"


def test_nan_marker_is_nan_or_pandas_na_only():
    assert _is_nan_marker(np.nan) and _is_nan_marker(float("nan"))
    assert not _is_nan_marker(-1) and not _is_nan_marker(0.0)
    assert not _is_nan_marker(None) and not _is_nan_marker("nan")
    pd = pytest.importorskip("pandas")
    assert _is_nan_marker(pd.NA)


def test_validate_dense_reads_nan_marked_float64_in_place():
    X = np.array([[1.0, np.nan], [2.0, 3.0]])
    out, dtype = _validate_dense(_Params(), X, reset=True)
    assert np.shares_memory(out, X) and dtype == np.float64
    out, dtype = _validate_dense(_Params(), X.astype(np.float32), reset=True)
    assert out.dtype == np.float64 and dtype == np.float32


def test_validate_dense_turns_a_numeric_marker_into_nan_on_a_copy():
    X = np.array([[1, -1], [2, 3]])
    out, dtype = _validate_dense(_Params(missing_values=-1), X, reset=True)
    np.testing.assert_array_equal(out, [[1.0, np.nan], [2.0, 3.0]])
    assert dtype == np.float64
    np.testing.assert_array_equal(X, [[1, -1], [2, 3]])  # the input is kept


def test_validate_dense_names_entries_that_are_not_numbers():
    X = np.array([[1.0, {}], [2.0, 3.0]], dtype=object)
    with pytest.raises(TypeError, match="not numbers"):
        _validate_dense(_Params(), X, reset=True)


def test_pandas_na_to_nan_leaves_numeric_input_as_it_is():
    pd = pytest.importorskip("pandas")
    X = np.array([[1.0, np.nan]])
    assert _pandas_na_to_nan(X) is X
    df = pd.DataFrame(X)
    assert _pandas_na_to_nan(df) is df
    obj = np.array([[1.0, pd.NA, None]], dtype=object)
    np.testing.assert_array_equal(
        _pandas_na_to_nan(obj).astype(float), [[1.0, np.nan, np.nan]]
    )


def test_check_limits_broadcasts_and_refuses_non_numbers():
    lo, hi = _check_limits(_Params(min_value=0.0), 3)
    np.testing.assert_array_equal(lo, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(hi, [np.inf] * 3)
    with pytest.raises(ValueError, match="must be a number"):
        _check_limits(_Params(max_value="high"), 3)


def test_check_any_observed_refuses_an_all_missing_mask():
    _check_any_observed(np.array([[False, True]]))
    with pytest.raises(ValueError, match="All entries of X are missing"):
        _check_any_observed(np.zeros((2, 2), dtype=bool))


def test_raw_units_limit_applies_to_scaling_none_only():
    X = np.array([[RAW_UNITS_MAX, np.nan]])
    mask = ~np.isnan(X)
    _check_raw_units(_Params(), X, mask)  # at the limit: accepted
    with pytest.raises(ValueError, match="scaling='none'"):
        _check_raw_units(_Params(), 2 * X, mask)
    _check_raw_units(_Params(scaling="standard"), 2 * X, mask)
