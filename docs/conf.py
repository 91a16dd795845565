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
import importlib.util
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
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "matplotlib.sphinxext.plot_directive",
]
# The user guide's figures (``.. plot::``, scripts in docs/_figures/).
plot_formats = [("png", 110)]
plot_html_show_formats = False
plot_html_show_source_link = False
plot_include_source = False
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "_autogen",
    "_figures",
    "_api_*.rst",
    "Thumbs.db",
    ".DS_Store",
]
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
        for m in ("estimators", "datasets", "metrics", "model_selection", "ratings")
    }
)
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"
autoclass_content = "class"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# Links to scikit-learn, NumPy, SciPy, pandas and torch, from inventories
# written here from the installed packages: the build downloads nothing, so
# it works offline and ``-W`` cannot fail on an unreachable server.
from _inventories import write_inventories  # noqa: E402

intersphinx_mapping = write_inventories(DOCS / "_autogen" / "inventories")
intersphinx_disabled_reftypes = ["std:doc"]

# Math is typeset by a copy of MathJax shipped with the
# ``sphinx-mathjax-offline`` package (a ``docs`` extra), so formulas render
# without a CDN; without the package, MathJax comes from its CDN.
if importlib.util.find_spec("sphinx-mathjax-offline") is not None:
    extensions.append("sphinx-mathjax-offline")

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
    # Every top-level page in the navbar, none folded under "More".
    "header_links_before_dropdown": 9,
    # the search as an icon, so that links, search and theme switch fit one line
    "navbar_persistent": ["search-button"],
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
# Top-level pages have no section navigation: no left sidebar, so their text
# gets the page's width instead of a column beside an empty box.
html_sidebars = {
    page: []
    for page in (
        "index",
        "getting_started",
        "user_guide",
        "contract",
        "model_selection",
        "command_line",
        "api",
    )
}
html_show_sourcelink = True
html_last_updated_fmt = ""


# -- code-driven content -------------------------------------------------------
def exported_imputers() -> list[str]:
    """Names of the imputer classes sklearn_mc exports, in the CLI's order."""
    from sklearn_mc._registry import all_imputers

    return [cls.__name__ for _, cls in all_imputers()]


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
    for module in ("datasets", "metrics", "model_selection", "ratings"):
        mod = importlib.import_module(f"sklearn_mc.{module}")
        names = sorted(getattr(mod, "__all__", []))
        body = [
            # the module's target (for :mod: references); the automodule
            # below shows its docstring without registering its members twice
            f".. py:module:: sklearn_mc.{module}",
            "",
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


def _stamp(meta_path: Path, md_path: Path, body: str = "") -> str:
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
    if re.search(r"\bmachine\b", body, re.IGNORECASE):
        return f"Result {when}; the machine and settings are stated below."
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


# What each figure written by a benchmark script shows (the script's docstring
# says the same); a figure not listed here is still shown, without a caption.
_FIGURE_CAPTIONS = {
    "air_net.png": "The observed image and each method's completion, one row "
    "per mask (the layout of the AIR-Net paper's Fig. 4). Click for full size.",
    "air_net_curve.png": "NMAE against iteration for AIR-Net and for deep "
    "matrix factorisation without early stopping (the layout of the paper's "
    "Fig. 3).",
    "deep_mf.png": "Error of the completion against the number of observed entries.",
    "dmf.png": "Held-out RMSE by area, as in the first table; a method "
    "without a bar in an area cannot complete it.",
    "mlp_seed.png": "Predicted against true values of the masked entries.",
    "sgd_mf.png": "Relative error of the completion against the sampling rate.",
}

# Benchmark results of one topic share a page: ``knn.md`` and
# ``knn_quick.md`` are one page with two sections, ``ratings_100k.md`` and
# ``ratings_1m.md`` another.
_VARIANT = re.compile(r"_(quick|full|small|large|\d+[kmg]?)$", re.IGNORECASE)


# Result files whose name does not start with their topic (the script that
# writes them).
_TOPIC_OF = {"deep_memory": "deep_mf"}


def _topic(stem: str) -> str:
    topic = _VARIANT.sub("", stem)
    return _TOPIC_OF.get(topic, topic)


def _split_title(body: str, default: str) -> tuple[str, str]:
    first = re.match(r"\s*#{1,3}\s+(.+)", body)
    if first:
        return first.group(1).strip(), body[first.end() :]
    return default, body


def _bench_title(topic: str, head: str) -> str:
    """One title pattern: "<class> benchmarks" for a method's topic."""
    from sklearn_mc._registry import METHODS

    for method in METHODS:
        if topic == method.name.replace("-", "_"):
            return f"{method.class_name} benchmarks"
    return head


def write_benchmark_pages() -> None:
    """Copy ``benchmarks/results/*.md`` (and their images) into the docs.

    One page per topic: the results of a topic's variants (``knn_quick.md``
    next to ``knn.md``) are sections of one page. Each page gets a title, a
    provenance line per result, and the figures of its topic
    (``<topic>*.png``) that its Markdown does not show already; the
    Markdown itself is shown as the benchmark script wrote it, its headings
    moved down.
    """
    src = ROOT / "benchmarks" / "results"
    dst = DOCS / "bench_results"
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir()
    results = sorted(src.glob("*.md")) if src.is_dir() else []
    images = (
        sorted(
            p
            for p in src.iterdir()
            if p.suffix.lower() in {".png", ".svg", ".jpg", ".jpeg", ".gif"}
        )
        if src.is_dir()
        else []
    )
    for image in images:
        shutil.copy2(image, dst / image.name)
    topics: dict[str, list[Path]] = {}
    for md in results:
        topics.setdefault(_topic(md.stem), []).append(md)
    pages = []
    for topic, mds in sorted(topics.items()):
        # the plain ``<topic>.md`` first, then the variants by name
        mds.sort(key=lambda p: (p.stem != topic, p.stem))
        sections, shown = [], set()
        title = None
        for k, md in enumerate(mds):
            body = md.read_text(encoding="utf-8")
            shown |= set(re.findall(r"\]\(([^)]+)\)", body))
            head, body = _split_title(body, f"Benchmark: {md.stem}")
            stamp = _stamp(md.with_suffix(".meta.json"), md, body)
            provenance = f"*{stamp}*\n\n*Source: `benchmarks/results/{md.name}`.*\n\n"
            if k == 0:
                sections_head = head
                title = _bench_title(topic, head)
                if title != head:
                    provenance = f"**{head}**\n\n" + provenance
                sections.append(provenance + _demote_headings(body, 1).strip())
            else:
                variant = (
                    md.stem[len(topic) :].strip("_")
                    if md.stem.startswith(topic)
                    else md.stem
                )
                if head == sections_head or variant.lower() in ("quick", "full"):
                    head = f"{variant.capitalize()} run: {head}"
                sections.append(
                    f"## {head}\n\n" + provenance + _demote_headings(body, 2).strip()
                )
        figures = [
            p.name
            for p in images
            if (p.stem == topic or p.stem.startswith(topic + "_"))
            and p.name not in shown
        ]
        if figures:
            block = ["## Figures", ""]
            for name in figures:
                block += [
                    f"```{{figure}} {name}",
                    ":width: 100%",
                    f":alt: {name}",
                    "",
                    _FIGURE_CAPTIONS.get(name, f"`{name}`, written by the script."),
                    "```",
                    "",
                ]
            sections.insert(1, "\n".join(block))
        text = f"# {title}\n\n" + "\n\n".join(sections).strip() + "\n"
        (dst / f"{topic}.md").write_text(text, encoding="utf-8")
        pages.append(topic)
    out = DOCS / "_autogen"
    out.mkdir(exist_ok=True)
    if pages:
        toc = ".. toctree::\n   :maxdepth: 1\n\n" + "".join(
            f"   bench_results/{p}\n" for p in pages
        )
    else:
        toc = "No benchmark results yet: run ``python docs/update_benchmarks.py``.\n"
    _write_if_changed(out / "benchmarks_toc.rst.inc", toc)


def _demote_headings(markdown: str, levels: int = 1) -> str:
    """Move every heading down so that the shallowest is at ``levels + 1``."""
    lines = markdown.splitlines()
    depths, fenced = [], False
    for line in lines:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        m = re.match(r"(#{1,6})\s", line)
        if not fenced and m:
            depths.append(len(m.group(1)))
    shift = levels + 1 - min(depths) if depths else 0
    out, fenced = [], False
    for line in lines:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        m = re.match(r"(#{1,6})\s", line)
        if not fenced and m:
            line = (
                "#" * min(6, max(1, len(m.group(1)) + shift)) + line[len(m.group(1)) :]
            )
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
    from sklearn_mc._registry import METHODS

    pages = sorted(
        p.stem
        for p in (DOCS / "methods").glob("*.rst")
        if p.stem != "index" and not p.stem.startswith("_")
    )

    def rank(stem: str) -> tuple[int, str]:
        key = stem.lstrip("_").replace("-", "_").lower()
        for k, method in enumerate(METHODS):
            if key == method.name.replace("-", "_"):
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
