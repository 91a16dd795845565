"""Sphinx configuration of the sklearn_mc documentation.

Build (from the repository root)::

    pip install -e ".[docs]"
    SKLEARN_MC_DOCS_QUICK=1 python -m sphinx -W -b html docs docs/_build/html

``SKLEARN_MC_DOCS_QUICK=1`` makes the gallery examples run on smaller data
(what CI does); ``-D plot_gallery=0`` skips running them altogether.

Three parts of the site follow the code instead of being written by hand, so
that they stay true as imputers are added:

* the API reference lists every imputer class in ``sklearn_mc.__all__``;
* a gallery example is built only when every name it imports from
  ``sklearn_mc`` exists;
* the benchmark pages are the Markdown files in ``benchmarks/results/``,
  stamped with the date, machine and versions recorded by
  ``docs/update_benchmarks.py``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import re
import shutil
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS))

import torch  # noqa: E402

import sklearn_mc  # noqa: E402
from sklearn_mc._base import BaseMatrixImputer  # noqa: E402

# The gallery's fits are small: one torch thread is as fast as several, and
# on a busy or shared machine several threads are many times slower.
torch.set_num_threads(int(os.environ.get("SKLEARN_MC_DOCS_THREADS", "1")))
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg")

# -- project -----------------------------------------------------------------
project = "sklearn_mc"
author = "the sklearn_mc developers"
copyright = "2025, the sklearn_mc developers"  # noqa: A001
release = sklearn_mc.__version__
version = ".".join(release.split(".")[:2])

# -- general -----------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "_autogen", "_api_*.rst", "Thumbs.db", ".DS_Store"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
default_role = "literal"
nitpicky = False

# The API lists are generated into docs/_api_*.rst (included by api.rst, not
# pages of their own); autosummary must scan them for stubs to be written.
_NOT_SCANNED = ("_build", "_templates", "_autogen", "auto_examples", "generated")
autosummary_generate = sorted(
    {
        str(p.relative_to(DOCS))
        for p in DOCS.rglob("*.rst")
        if p.relative_to(DOCS).parts[0] not in _NOT_SCANNED
    }
    | {
        f"_api_{m}.rst"
        for m in ("estimators", "datasets", "metrics", "model_selection")
    }
)
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"
autoclass_content = "class"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# The benchmark pages are Markdown written by scripts: their heading levels
# are not ours to police.
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn_mc {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_show_sourcelink = True
html_last_updated_fmt = ""


# -- code-driven content -------------------------------------------------------
def exported_imputers() -> list[str]:
    """Names of the imputer classes sklearn_mc exports, in the CLI's order."""
    from sklearn_mc.cli import METHODS

    names = [
        n
        for n in sklearn_mc.__all__
        if inspect.isclass(getattr(sklearn_mc, n))
        and issubclass(getattr(sklearn_mc, n), BaseMatrixImputer)
    ]
    order = [c for c in METHODS.values() if c in names]
    return order + sorted(set(names) - set(order))


def write_api_list() -> None:
    """The autosummary table of the estimators, included by ``api.rst``."""
    lines = [
        ".. currentmodule:: sklearn_mc",
        "",
        ".. autosummary::",
        "   :toctree: generated/",
        "   :template: class.rst",
        "",
    ]
    lines += [f"   {name}" for name in exported_imputers()]
    text = "\n".join(lines) + "\n"
    if not exported_imputers():
        text = "No imputer is exported yet.\n"
    _write_if_changed(DOCS / "_api_estimators.rst", text)
    for module in ("datasets", "metrics", "model_selection"):
        mod = importlib.import_module(f"sklearn_mc.{module}")
        names = sorted(getattr(mod, "__all__", []))
        body = [
            f".. automodule:: sklearn_mc.{module}",
            "   :no-members:",
            "   :no-index:",
            "",
            f".. currentmodule:: sklearn_mc.{module}",
            "",
            ".. autosummary::",
            "   :toctree: generated/",
            "   :template: function.rst",
            "",
            *(f"   {name}" for name in names),
        ]
        _write_if_changed(DOCS / f"_api_{module}.rst", "\n".join(body) + "\n")


def examples_to_skip() -> list[str]:
    """Gallery examples that import a name sklearn_mc does not export (yet)."""
    skip = []
    for path in sorted((ROOT / "examples").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "sklearn_mc":
                if any(not hasattr(sklearn_mc, a.name) for a in node.names):
                    skip.append(path.name)
                    break
    return skip


def _stamp(meta_path: Path, md_path: Path) -> str:
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
        return (
            f"Generated {meta.get('date', '?')} by `{meta.get('command', '?')}` "
            f"({meta.get('elapsed_s', '?')} s) on {meta.get('machine', '?')}; "
            f"{versions}."
            + (
                " The script exited with an error."
                if meta.get("exit_status") == "failed"
                else ""
            )
        )
    when = _git_date(md_path)
    if when is None:
        mtime = datetime.fromtimestamp(md_path.stat().st_mtime, tz=timezone.utc)
        when = f"file dated {mtime:%Y-%m-%d %H:%M} UTC"
    else:
        when = f"last committed {when}"
    return (
        f"Result {when}; machine and versions were not recorded (regenerate "
        "with `python docs/update_benchmarks.py`)."
    )


def _git_date(path: Path) -> str | None:
    """Date of the last commit that touched ``path`` (a fresh clone's file
    times are the checkout's), or None outside git or for a new file."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%cd", "--date=format:%Y-%m-%d", "--", path],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    if status.stdout.strip():  # changed since that commit: the commit date lies
        return None
    return out.stdout.strip()


def write_benchmark_pages() -> None:
    """Copy ``benchmarks/results/*.md`` (and their images) into the docs.

    Each page gets a title and a provenance line; the Markdown itself is
    shown as the benchmark script wrote it, its headings one level down.
    """
    src = ROOT / "benchmarks" / "results"
    dst = DOCS / "bench_results"
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir()
    pages = []
    for md in sorted(src.glob("*.md")) if src.is_dir() else []:
        body = md.read_text(encoding="utf-8")
        title = f"Benchmark: {md.stem}"
        first = re.match(r"\s*#\s+(.+)", body)
        if first:
            title, body = first.group(1).strip(), body[first.end() :]
        body = _demote_headings(body)
        stamp = _stamp(md.with_suffix(".meta.json"), md)
        text = (
            f"# {title}\n\n*{stamp}*\n\n*Source: `benchmarks/results/{md.name}`.*\n\n"
            f"{body.strip()}\n"
        )
        (dst / md.name).write_text(text, encoding="utf-8")
        pages.append(md.stem)
    if src.is_dir():
        for image in src.iterdir():
            if image.suffix.lower() in {".png", ".svg", ".jpg", ".jpeg", ".gif"}:
                shutil.copy2(image, dst / image.name)
    out = DOCS / "_autogen"
    out.mkdir(exist_ok=True)
    if pages:
        toc = ".. toctree::\n   :maxdepth: 1\n\n" + "".join(
            f"   bench_results/{p}\n" for p in pages
        )
    else:
        toc = "No benchmark results yet: run ``python docs/update_benchmarks.py``.\n"
    _write_if_changed(out / "benchmarks_toc.rst.inc", toc)


def _demote_headings(markdown: str) -> str:
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"#{1,5}\s", line):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


def _write_if_changed(path: Path, text: str) -> None:
    # Rewriting an unchanged file would make Sphinx rebuild every page.
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def write_cli_help() -> None:
    """``--help`` of the command and its subcommands, as the shell shows them."""
    from sklearn_mc import cli

    os.environ["COLUMNS"] = "80"  # argparse wraps to the terminal width
    parser = cli.build_parser()
    out = DOCS / "_autogen"
    out.mkdir(exist_ok=True)
    texts = {"cli_help.txt": parser.format_help()}
    subparsers = next(
        a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"
    )
    for name, sub in subparsers.choices.items():
        texts[f"cli_help_{name}.txt"] = sub.format_help()
    for name, text in texts.items():
        _write_if_changed(out / name, text)


def write_methods_toc() -> None:
    """The toctree of ``methods/*.rst``, in the order of the user guide."""
    from sklearn_mc.cli import METHODS

    pages = sorted(
        p.stem
        for p in (DOCS / "methods").glob("*.rst")
        if p.stem != "index" and not p.stem.startswith("_")
    )

    def rank(stem: str) -> tuple[int, str]:
        key = stem.lstrip("_").replace("-", "_").lower()
        for k, method in enumerate(METHODS):
            if key == method.replace("-", "_"):
                return k, stem
        return len(METHODS), stem

    pages.sort(key=rank)
    if pages:
        text = ".. toctree::\n   :maxdepth: 1\n\n" + "".join(f"   {p}\n" for p in pages)
    else:
        text = "No method page has been written yet.\n"
    _write_if_changed(DOCS / "_autogen" / "methods_toc.rst", text)


(DOCS / "_autogen").mkdir(exist_ok=True)
write_api_list()
write_cli_help()
write_methods_toc()
write_benchmark_pages()

# -- sphinx-gallery ----------------------------------------------------------
QUICK = os.environ.get("SKLEARN_MC_DOCS_QUICK", "0") not in ("", "0")
_skipped = examples_to_skip()
_ignore = "|".join(re.escape(name) for name in _skipped)
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": rf"__init__\.py|{_ignore}" if _ignore else r"__init__\.py",
    "doc_module": ("sklearn_mc",),
    "backreferences_dir": "generated/backreferences",
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "matplotlib_animations": False,
    "show_memory": False,
    "min_reported_time": 1,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib", "seaborn"),
}
if _skipped:
    print(
        "sklearn_mc docs: gallery examples skipped (their classes are not "
        f"exported yet): {', '.join(_skipped)}"
    )


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Document only what sklearn_mc defines.

    Members inherited from scikit-learn (``get_params``, ``set_output``, ...)
    carry cross-references into scikit-learn's own docs that cannot resolve
    here; the class pages point to scikit-learn for them instead.
    """
    if what != "class" or skip:
        return skip
    module = getattr(inspect.unwrap(obj), "__module__", None) or ""
    if isinstance(obj, property):
        module = getattr(obj.fget, "__module__", "") or ""
    if module and not module.startswith("sklearn_mc"):
        return True
    return None


_TYPE_LINE = re.compile(r"^(\s*[*\w, ]+ : )(.+)$")
_TRAILING_UNDERSCORE = re.compile(r"(?<![\w`])([A-Za-z]\w*_)(?![\w`])")


def _quote_fitted_names_in_types(app, what, name, obj, options, lines):
    """Quote ``rank_`` in "ndarray of shape (rank_, n)" type lines.

    scikit-learn-style type strings name fitted attributes, whose trailing
    underscore reStructuredText reads as a link target (scikit-learn's own
    docstrings put them in backticks for that reason). Runs before numpydoc.
    """
    for k, line in enumerate(lines):
        match = _TYPE_LINE.match(line)
        if match:
            head, kind = match.groups()
            lines[k] = head + _TRAILING_UNDERSCORE.sub(r"``\1``", kind)


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_members)
    app.connect("autodoc-process-docstring", _quote_fitted_names_in_types, priority=100)
