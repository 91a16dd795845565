"""The method registry: class attributes, discovery from ``__all__``, the static
index used by ``--help`` (read from the source), the fast settings and cost
models the classes declare, and reachability of every imputer from the CLI."""

from __future__ import annotations

import inspect
import io
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run_cli, run_fresh
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
    # `--help` reads the index from the source (no torch import); it must say
    # what the imported classes say, in the same order. If this fails, the
    # class attributes are not plain literals or the export is not a class
    # statement the index can follow (see sklearn_mc._registry).
    discovered = [
        _registry.MethodInfo(name, cls.__name__, vars(cls).get("_summary", ""))
        for name, cls in _registry.all_imputers()
    ]
    assert len(discovered) == len(EXPORTED)
    assert list(_registry.METHODS) == discovered


def test_static_index_does_not_import_torch():
    out, heavy = run_fresh(
        "from sklearn_mc._registry import METHODS\nprint(len(METHODS))",
        ("torch", "numpy", "sklearn", "sklearn_mc._base"),
    )
    assert heavy == []
    assert out.split() == [str(len(EXPORTED))]


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """Index a throw-away package ``fakepkg`` instead of sklearn_mc."""

    def index(files: dict[str, str]):
        root = tmp_path / "fakepkg"
        root.mkdir()
        for name, text in files.items():
            (root / name).write_text(textwrap.dedent(text), encoding="utf-8")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setattr(_registry, "_PACKAGE", "fakepkg")
        monkeypatch.setattr(_registry, "_ROOT", ("fakepkg._base", "BaseMatrixImputer"))
        _registry._parse.cache_clear()
        try:
            return _registry._index_from_source()
        finally:
            _registry._parse.cache_clear()
            for module in [m for m in sys.modules if m.partition(".")[0] == "fakepkg"]:
                del sys.modules[module]  # the next test writes another one

    return index


FAKE_BASE = """
    class BaseMatrixImputer:
        pass


    class Oops(Exception):
        pass
"""


def test_static_index_follows_the_discovery_rules(fake_package):
    index = fake_package(
        {
            "__init__.py": """
                _LAZY_ATTRS: dict[str, str] = {
                    "AImputer": "._a", "BImputer": "._b", "ZImputer": "._b",
                    "Helper": "._a", "Oops": "._base",
                }
                __all__ = ["AImputer", "BImputer", "Helper", "Oops", "ZImputer",
                           "__version__"]
                __version__ = "0"
            """,
            "_base.py": FAKE_BASE,
            "_a.py": """
                from ._base import BaseMatrixImputer as Base


                class AImputer(Base):
                    _cli_name = "a-one"
                    _summary = "the first" " one"
                    _cli_order = 2


                class Helper:
                    _cli_name = "helper"
            """,
            "_b.py": """
                from ._a import AImputer


                class BImputer(AImputer):  # names itself: nothing inherited
                    _cli_order = 1


                class ZImputer(BImputer):
                    _summary: str = "no order: after the others"
            """,
        }
    )
    assert index == (
        _registry.MethodInfo("b", "BImputer", ""),
        _registry.MethodInfo("a-one", "AImputer", "the first one"),
        _registry.MethodInfo("z", "ZImputer", "no order: after the others"),
    )


def test_static_index_rejects_a_computed_summary(fake_package):
    files = {
        "__init__.py": '_LAZY_ATTRS = {"XImputer": "._base"}\n__all__ = ["XImputer"]',
        "_base.py": FAKE_BASE
        + """

    class XImputer(BaseMatrixImputer):
        _summary = "x".upper()
""",
    }
    with pytest.raises(ValueError, match=r"fakepkg._base.XImputer._summary must be"):
        fake_package(files)


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda c: c.__name__)
def test_every_exported_imputer_names_itself(cls):
    name = vars(cls).get("_cli_name")
    assert isinstance(name, str) and name == _registry.normalise_name(name)
    summary = vars(cls).get("_summary")
    assert isinstance(summary, str) and 10 < len(summary) <= 72
    assert _registry.get_imputer(name) is cls
    assert _registry.get_imputer(cls.__name__) is cls
    assert _registry.get_imputer(name.replace("-", "_").upper()) is cls


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda c: c.__name__)
def test_every_exported_imputer_declares_fast_settings_and_a_cost(cls):
    assert isinstance(getattr(cls, "_fast_params", None), dict)
    fast = _registry.fast_params(cls)
    assert set(fast) <= set(cls().get_params())
    assert _registry.fast_params(vars(cls)["_cli_name"]) == fast
    default = _registry.estimate_fit_seconds(cls(), 600, 10)
    assert isinstance(default, float) and default > 0
    assert _registry.estimate_fit_seconds(cls(**fast), 600, 10) <= default


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda c: c.__name__)
def test_iterative_means_the_cost_follows_max_iter(cls):
    # The command line suggests a smaller max_iter for a slow fit of an
    # iterative method only: the flag must say what the cost model does.
    if "max_iter" not in cls().get_params():
        assert not _registry.is_iterative(cls)
        return
    once = _registry.estimate_fit_seconds(cls(max_iter=100), 600, 10)
    twice = _registry.estimate_fit_seconds(cls(max_iter=200), 600, 10)
    assert (twice == pytest.approx(2 * once)) is _registry.is_iterative(cls)


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
    # Named by itself, listed last; the settings and the cost are inherited.
    assert _registry.all_imputers()[-1] == ("throwaway", ThrowAwayImputer)
    knn = sklearn_mc.KNNImputer
    assert _registry.fast_params("throwaway") == _registry.fast_params(knn)
    assert _registry.estimate_fit_seconds(
        ThrowAwayImputer(), 600, 10
    ) == _registry.estimate_fit_seconds(knn(), 600, 10)


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
