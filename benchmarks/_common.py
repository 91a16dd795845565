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
    """The fancyimpute module, or None and the reason it cannot be used here."""
    try:
        import fancyimpute  # noqa: F401
    except Exception as exc:  # ImportError, or its sklearn<=1.5 pin breaking
        return None, (
            f"fancyimpute skipped: {type(exc).__name__}: {exc}. fancyimpute 0.7.0 "
            "needs scikit-learn<=1.5; install it in its own venv to compare."
        )
    return fancyimpute, ""
