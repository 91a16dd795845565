"""Tests of sklearn_mc.metrics."""

import numpy as np
import pytest

from sklearn_mc.metrics import mae, nmae, relative_error, rmse


def test_metrics_on_chosen_entries():
    X = np.array([[0.0, 1.0], [2.0, 4.0]])
    Y = np.array([[0.0, 2.0], [2.0, 2.0]])
    mask = np.array([[False, True], [False, True]])
    assert rmse(X, Y, mask) == pytest.approx(np.sqrt((1 + 4) / 2))
    assert mae(X, Y, mask) == pytest.approx(1.5)
    assert nmae(X, Y, mask) == pytest.approx(1.5 / 4)
    assert relative_error(X, Y, mask) == pytest.approx(np.sqrt(5 / 17))
    assert rmse(X, Y) == pytest.approx(np.sqrt(5 / 4))
    with pytest.raises(ValueError, match="no entries"):
        rmse(X, Y, np.zeros((2, 2), bool))
