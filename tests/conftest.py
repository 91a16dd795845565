"""Shared test helpers: every estimator the package exports, in a fast setting."""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
import torch
from hypothesis import settings

import sklearn_mc
from sklearn_mc import _registry
from sklearn_mc._base import BaseMatrixImputer

torch.set_num_threads(1)

# The property tests draw the same examples on every run (CI must not pass or
# fail by chance); HYPOTHESIS_PROFILE=explore draws fresh ones to hunt bugs.
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

#: Marks a test that needs a CUDA device; it is skipped on machines without one
#: (``pytest -m requires_cuda`` runs only those on a GPU machine).
requires_cuda = pytest.mark.requires_cuda

#: ``TEST_OVERRIDES[name][key] = DEFAULT``: the tests keep the class default
#: for ``key`` although the ``--fast`` setting changes it.
DEFAULT = object()

#: How the tests tighten the command line's fast settings (each class's
#: ``_fast_params``, seconds on a small table) to theirs (tiny matrices, few
#: epochs). Keyed by class name.
TEST_OVERRIDES: dict[str, dict] = {
    # the golden outputs were stored with SVD's default iteration cap
    "SVDImputer": {"max_iter": DEFAULT},
    "SGDMFImputer": {
        "max_iter": 30,
        "alpha_decay": 0.8,
        "learning_rate": 0.1,
        "early_stopping": False,
    },
    "DeepMFImputer": {"max_iter": 100, "learning_rate": 2e-2},
    "AIRNetImputer": {"max_iter": 100, "learning_rate": 2e-2},
    "MLPImputer": {"max_iter": 30, "n_iter_no_change": 5},
    "DMFImputer": {"max_iter": 5},
    "ChainedImputer": {"max_iter": 3},
}


def _test_settings() -> dict[str, dict]:
    table = {}
    for _, cls in _registry.all_imputers():
        settings = {
            **_registry.fast_params(cls),
            **TEST_OVERRIDES.get(cls.__name__, {}),
        }
        table[cls.__name__] = {k: v for k, v in settings.items() if v is not DEFAULT}
    return table


#: Settings that keep each estimator's fit small in tests: the command line's
#: fast settings with the test overrides above. Keyed by class name; applied
#: on top of the defaults.
FAST_PARAMS: dict[str, dict] = _test_settings()


def all_imputer_classes():
    """Every BaseMatrixImputer subclass exported by sklearn_mc."""
    classes = []
    for name in sklearn_mc.__all__:
        obj = getattr(sklearn_mc, name)
        if inspect.isclass(obj) and issubclass(obj, BaseMatrixImputer):
            classes.append(obj)
    return classes


def pytest_configure(config):
    # The fast settings above stop most fits at max_iter on purpose; their
    # ConvergenceWarning would drown the report. Tests of the warning itself
    # use pytest.warns, which records it regardless of this filter.
    config.addinivalue_line(
        "filterwarnings", "ignore::sklearn.exceptions.ConvergenceWarning"
    )
    config.addinivalue_line(
        "markers", "requires_cuda: needs a CUDA device (skipped without one)"
    )


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; this machine has none")
    for item in items:
        if "requires_cuda" in item.keywords:
            item.add_marker(skip)


def make_fast(cls, **overrides):
    """An instance of ``cls`` in its fast test setting, on the CPU, seeded."""
    params = {"device": "cpu", "random_state": 0}
    params.update(FAST_PARAMS.get(cls.__name__, {}))
    params.update(overrides)
    valid = cls().get_params()
    return cls(**{k: v for k, v in params.items() if k in valid})


@pytest.fixture
def low_rank_with_holes():
    """A 40 x 12 rank-3 matrix and a copy with 25 % of its entries missing."""
    from sklearn_mc.datasets import make_low_rank, make_mask

    X = make_low_rank(40, 12, 3, random_state=0)
    X_missing = X.copy()
    X_missing[make_mask(X.shape, "random", missing_rate=0.25, random_state=1)] = np.nan
    return X, X_missing
