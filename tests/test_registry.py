"""The method registry: class attributes, discovery from ``__all__``, the static
index used by ``--help``, and reachability of every imputer from the CLI."""

from __future__ import annotations

import inspect
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run_cli
from conftest import FAST_PARAMS

import sklearn_mc
from sklearn_mc import _registry
from sklearn_mc._base import BaseMatrixImputer

EXPORTED = [
    getattr(sklearn_mc, name)
    for name in sklearn_mc.__all__
    if inspect.isclass(getattr(sklearn_mc, name))
    and issubclass(getattr(sklearn_mc, name), BaseMatrixImputer)
]


def test_static_index_matches_the_classes():
    # `--help` reads the static index (no torch import); it must say what
    # the classes say. If this fails, copy the class attributes into
    # sklearn_mc._registry.METHODS.
    discovered = [
        _registry.MethodInfo(name, cls.__name__, vars(cls).get("_summary", ""))
        for name, cls in _registry.all_imputers()
    ]
    assert list(_registry.METHODS) == discovered


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda c: c.__name__)
def test_every_exported_imputer_names_itself(cls):
    name = vars(cls).get("_cli_name")
    assert isinstance(name, str) and name == _registry.normalise_name(name)
    summary = vars(cls).get("_summary")
    assert isinstance(summary, str) and 10 < len(summary) <= 72
    assert _registry.get_imputer(name) is cls
    assert _registry.get_imputer(cls.__name__) is cls
    assert _registry.get_imputer(name.replace("-", "_").upper()) is cls
    assert name in _registry.FAST_PARAMS
    assert _registry.estimate_fit_seconds(cls(), 100, 10) is not None


def test_discovery_finds_a_new_export(monkeypatch):
    # A class added to __all__ is reachable without touching the CLI.
    class ThrowAwayImputer(sklearn_mc.KNNImputer):
        pass

    monkeypatch.setattr(sklearn_mc, "ThrowAwayImputer", ThrowAwayImputer, raising=False)
    monkeypatch.setattr(
        sklearn_mc, "__all__", [*sklearn_mc.__all__, "ThrowAwayImputer"]
    )
    names = dict(_registry.all_imputers())
    assert names["throwaway"] is ThrowAwayImputer
    assert _registry.get_imputer("throwaway") is ThrowAwayImputer


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="choose one of: svd, knn"):
        _registry.get_imputer("nope")


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda c: c.__name__)
def test_every_exported_imputer_is_reachable_from_the_cli(cls, tmp_path, capsys):
    src = tmp_path / "in.csv"
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 2)) @ rng.standard_normal((2, 4)) + 5
    X[rng.random(X.shape) < 0.2] = np.nan
    X[0] = 5.0  # every column observed
    pd.DataFrame(X, columns=list("abcd")).to_csv(src, index=False)
    params = []
    valid = cls().get_params()
    for key, value in FAST_PARAMS.get(cls.__name__, {}).items():
        if key in valid:
            params += ["--param", f"{key}={value!r}"]
    name = vars(cls)["_cli_name"]
    code, out, err = run_cli(
        capsys, "impute", str(src), "-o", "-", "-q", "--method", name,
        "--seed", "0", "--device", "cpu", *params,
    )  # fmt: skip
    assert code == 0, err
    result = pd.read_csv(io.StringIO(out)).to_numpy()
    assert np.isfinite(result).all()
    known = ~np.isnan(X)
    np.testing.assert_array_equal(result[known], X[known])


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda c: c.__name__)
def test_every_exported_imputer_has_a_method_page(cls):
    # The docs build lists docs/methods/*.rst automatically, so a new imputer
    # without a page would build cleanly and simply be missing from the docs.
    methods = Path(__file__).resolve().parent.parent / "docs" / "methods"
    word = re.compile(rf"\b{cls.__name__}\b")
    titled = [
        page.name
        for page in methods.glob("*.rst")
        if word.search("\n".join(page.read_text(encoding="utf-8").splitlines()[:4]))
    ]
    assert len(titled) == 1, f"{cls.__name__}: method pages titled by it: {titled}"
