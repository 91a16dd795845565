"""Small helpers shared by the benchmark scripts (tables, timing, environment)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def environment() -> str:
    """One line naming the machine and versions the numbers come from."""
    import numpy
    import sklearn
    import torch

    return (
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPU "
        f"threads visible, torch {torch.__version__} ({torch.get_num_threads()} "
        f"threads), scikit-learn {sklearn.__version__}, numpy {numpy.__version__}, "
        f"Python {platform.python_version()}"
    )


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """Rows of dicts as a GitHub-flavoured markdown table."""

    def fmt(value):
        if isinstance(value, float):
            return (
                f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
            )
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows
    ]
    return "\n".join(lines)


def write_report(name: str, text: str) -> Path:
    """Print ``text`` and save it as ``benchmarks/results/<name>.md``."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text + "\n")
    print(text)
    return path


def timed(fn, *args, **kwargs):
    """``(result, seconds)`` of one call."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def fancyimpute_or_reason():
    """The fancyimpute module, or None and the reason it cannot be used here.

    fancyimpute 0.7.0 (the last release) is pure NumPy but calls
    ``check_array(force_all_finite=...)``, which scikit-learn 1.8 removed, and
    imports cvxpy for the one solver (NuclearNormMinimization) the benchmarks
    do not use. Install it with ``pip install --no-deps fancyimpute
    knnimpute``; this loader renames the argument for it and stands in an
    empty module for cvxpy when cvxpy is absent. Nothing else is changed.
    """
    import importlib
    import sys
    import types

    try:
        importlib.import_module("cvxpy")
    except ImportError:
        sys.modules.setdefault("cvxpy", types.ModuleType("cvxpy"))
    try:
        import fancyimpute
    except Exception as exc:
        return None, (
            f"fancyimpute skipped: {type(exc).__name__}: {exc} (install it with "
            "`pip install --no-deps fancyimpute knnimpute`)."
        )
    _patch_check_array(fancyimpute)
    return fancyimpute, ""


def _patch_check_array(fancyimpute) -> None:
    import inspect
    import sys

    from sklearn.utils import check_array

    if "force_all_finite" in inspect.signature(check_array).parameters:
        return

    def compatible(X, *args, force_all_finite=True, **kwargs):
        kwargs.setdefault("ensure_all_finite", force_all_finite)
        return check_array(X, *args, **kwargs)

    for name, module in list(sys.modules.items()):
        if name.startswith("fancyimpute") and hasattr(module, "check_array"):
            module.check_array = compatible
