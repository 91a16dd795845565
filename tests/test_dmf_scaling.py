"""DMF's map of the data onto [-1, 1] (``sklearn_mc._dmf_scaling``)."""

from __future__ import annotations

import numpy as np
import pytest

from sklearn_mc._dmf_scaling import _common_scale, new_column_scaling, range_scaling


def _entries(X):
    rows, cols = np.nonzero(~np.isnan(X))
    return X[rows, cols], cols


def test_column_scaling_maps_each_column_range_onto_minus_one_one():
    X = np.array([[0.0, 100.0], [2.0, 300.0], [np.nan, 200.0]])
    values, cols = _entries(X)
    fitted = range_scaling(values, cols, 2, "column", None)
    assert fitted.kind == "column"
    scaled = (values - fitted.shift[cols]) / fitted.half[cols]
    for j in range(2):
        assert scaled[cols == j].min() == -1.0 and scaled[cols == j].max() == 1.0


def test_auto_is_global_for_one_scale_and_column_for_mixed_units():
    ratings = np.array([[1.0, 5.0], [2.0, 4.0], [5.0, 1.0]])
    mixed = np.array([[1.0, 500.0], [2.0, 400.0], [3.0, 100.0]])
    assert range_scaling(*_entries(ratings), 2, "auto", None).kind == "global"
    assert range_scaling(*_entries(mixed), 2, "auto", None).kind == "column"
    assert _common_scale(np.array([1.0, 1.0]), np.array([5.0, 4.0]))


def test_levels_span_the_global_map_even_where_unused():
    values, cols = np.array([2.0, 3.0, 4.0]), np.array([0, 1, 1])
    fitted = range_scaling(values, cols, 2, "auto", np.array([1.0, 3.0, 5.0]))
    assert fitted.kind == "global"
    np.testing.assert_array_equal(fitted.shift, [3.0, 3.0])
    np.testing.assert_array_equal(fitted.half, [2.0, 2.0])
    with pytest.raises(ValueError, match="need scaling='global'"):
        range_scaling(values, cols, 2, "column", np.array([1.0, 5.0]))


def test_constant_column_gets_the_typical_half_width():
    values, cols = (
        np.array([7.0, 7.0, 0.0, 4.0, 0.0, 8.0]),
        np.array([0, 0, 1, 1, 2, 2]),
    )
    fitted = range_scaling(values, cols, 3, "column", None)
    assert fitted.default_half == 3.0  # median of the non-zero half-widths 2, 4
    np.testing.assert_array_equal(fitted.half, [3.0, 2.0, 4.0])


def test_new_columns_follow_the_fitted_rule():
    values, cols = np.array([0.0, 10.0, 0.0, 2.0]), np.array([0, 0, 1, 1])
    column = range_scaling(values, cols, 2, "column", None)
    Y = np.array([[4.0, np.nan, 3.0], [8.0, np.nan, 3.0]])
    shift, half = new_column_scaling(Y, ~np.isnan(Y), column)
    np.testing.assert_array_equal(shift, [6.0, np.median(column.shift), 3.0])
    np.testing.assert_array_equal(half, [2.0, column.default_half, column.default_half])
    glob = range_scaling(values, cols, 2, "global", None)
    shift, half = new_column_scaling(Y, ~np.isnan(Y), glob)
    np.testing.assert_array_equal(shift, [5.0, 5.0, 5.0])
    np.testing.assert_array_equal(half, [5.0, 5.0, 5.0])
