"""The one benchmark harness: results paths, tables, timers, environment.

Every ``bench_*.py`` takes from here where its results go (:data:`RESULTS`,
:func:`report_path`, :func:`write_report`; a ``--quick`` run writes
``<name>_quick.md`` so it never replaces the full table), how a table is
written (:func:`markdown_table`, :func:`fmt`), how a run is timed
(:class:`Timer`: wall and CPU seconds, since the machine is shared) and the
stamp that says where the numbers come from (:func:`environment`, with the
load average, and :func:`command`).
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def report_path(name: str, *, quick: bool = False, suffix: str = ".md") -> Path:
    """``benchmarks/results/<name><suffix>``, or ``<name>_quick<suffix>``.

    A quick run (small data, short fits) gets its own file, so that it never
    overwrites the full run's table or figure.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"{name}{'_quick' if quick else ''}{suffix}"


def write_report(name: str, text: str, *, quick: bool = False) -> Path:
    """Print ``text`` and save it as :func:`report_path` ``(name, quick=quick)``."""
    path = report_path(name, quick=quick)
    path.write_text(text.rstrip("\n") + "\n")
    print(text)
    print(f"wrote {path}")
    return path


def load_average() -> str:
    """The machine's load average (1, 5 and 15 minutes), or "unknown"."""
    try:
        one, five, fifteen = os.getloadavg()
    except (AttributeError, OSError):
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def environment() -> str:
    """One line naming the machine, its load and the versions the numbers
    come from."""
    import numpy
    import sklearn
    import torch

    return (
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPU "
        f"threads visible, load average {load_average()} (1 / 5 / 15 min), "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"scikit-learn {sklearn.__version__}, numpy {numpy.__version__}, "
        f"Python {platform.python_version()}"
    )


def command(argv: list[str] | None = None, script: str | None = None) -> str:
    """The command line that produced a table, as inline markdown code.

    ``argv``: the script's arguments (default ``sys.argv[1:]``); ``script``:
    its path (default ``sys.argv[0]``).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    name = Path(script or sys.argv[0]).name
    words = ["python", f"benchmarks/{name}", *map(shlex.quote, args)]
    return "`" + " ".join(words) + "`"


def fmt(value, digits: int = 3, *, fixed: bool = False) -> str:
    """A table cell: a float to ``digits`` significant digits (``fixed``:
    decimals); NaN and None as "–"."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value:
            return "–"
        if fixed:
            return f"{value:.{digits}f}"
        if abs(value) >= 10 ** (-digits) or value == 0:
            return f"{value:.{digits}g}"
        return f"{value:.2e}"
    return str(value)


def markdown_table(rows: list, columns: list[str]) -> str:
    """Rows (dicts keyed by column, or sequences in column order) as a
    GitHub-flavoured markdown table."""
    head = "| " + " | ".join(_escape(c) for c in columns) + " |"
    lines = [head, "|" + "---|" * len(columns)]
    for row in rows:
        cells = [row.get(c, "") for c in columns] if isinstance(row, dict) else row
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return _escape(value)


def _escape(value) -> str:
    """A literal ``|`` would end the cell; GitHub markdown reads ``\\|``."""
    return str(value).replace("|", "\\|")


class Timer:
    """Wall and CPU seconds of a block: ``with Timer() as t: ...``.

    ``t.wall`` is elapsed time (an upper bound on a shared machine), ``t.cpu``
    the process's CPU time (all its threads; ``time.process_time``). Both are
    read live inside the block and frozen at its end.
    """

    def __enter__(self) -> Timer:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        self._stopped: tuple[float, float] | None = None
        return self

    def __exit__(self, *exc) -> None:
        self._stopped = (self.wall, self.cpu)

    @property
    def wall(self) -> float:
        if getattr(self, "_stopped", None):
            return self._stopped[0]
        return time.perf_counter() - self._wall

    @property
    def cpu(self) -> float:
        if getattr(self, "_stopped", None):
            return self._stopped[1]
        return time.process_time() - self._cpu


def timed(fn, *args, **kwargs):
    """``(result, wall seconds)`` of one call."""
    with Timer() as t:
        out = fn(*args, **kwargs)
    return out, t.wall


def timed_cpu(fn, *args, **kwargs):
    """``(result, wall seconds, CPU seconds)`` of one call."""
    with Timer() as t:
        out = fn(*args, **kwargs)
    return out, t.wall, t.cpu


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
