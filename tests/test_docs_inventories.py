"""The offline intersphinx inventories that ``docs/conf.py`` builds."""

from __future__ import annotations

import importlib.util
import posixpath
import zlib
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _load_module():
    spec = importlib.util.spec_from_file_location(
        "_inventories", DOCS / "_inventories.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inventories_are_readable_by_sphinx_and_point_at_the_pages(tmp_path):
    inventory = pytest.importorskip("sphinx.util.inventory")
    mapping = _load_module().write_inventories(tmp_path)
    assert {"sklearn", "numpy"} <= set(mapping)
    base, path = mapping["sklearn"]
    with open(path, "rb") as stream:
        inv = inventory.InventoryFile.load(stream, base, posixpath.join)
    items = {name: item for objects in inv.values() for name, item in objects.items()}
    uri = items["sklearn.impute.KNNImputer"]
    uri = uri.uri if hasattr(uri, "uri") else uri[2]  # Sphinx >= 8.2 / older
    assert uri == (
        "https://scikit-learn.org/stable/modules/generated/"
        "sklearn.impute.KNNImputer.html#sklearn.impute.KNNImputer"
    )
    # experimental classes are listed too
    assert "sklearn.impute.IterativeImputer" in items
    # rewriting an unchanged inventory leaves the file alone
    before = Path(path).stat().st_mtime_ns
    _load_module().write_inventories(tmp_path)
    assert Path(path).stat().st_mtime_ns == before


def test_inventory_lists_each_name_and_role_once():
    module = _load_module()
    data = module.inventory_bytes(
        "p", "1", [("a.b", "py:class", "x.html"), ("a.b", "py:class", "y.html")]
    )
    header, body = data.split(b"zlib.\n", 1)
    assert header.startswith(b"# Sphinx inventory version 2")
    assert zlib.decompress(body).decode() == "a.b py:class 1 x.html -\n"
