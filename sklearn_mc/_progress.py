"""The progress display of the package's loops, on stderr.

:func:`progress` is a tqdm bar on a terminal or in a notebook, and plain
lines (about ten per loop) when stderr is redirected to a log. The training
loop's :class:`~sklearn_mc._callbacks.ProgressBar`, the KNN row chunks and
the SVD sweeps all show it.
"""

from __future__ import annotations

import math
import sys

from tqdm.auto import tqdm


def progress(
    total: int, verbose: int, desc: str, *, unit: str = "it", eta: bool = True
):
    """A progress display on stderr, shown only when ``verbose`` is truthy.

    On a terminal (or in a notebook) a tqdm bar, kept at the end when
    ``verbose > 1``; ``eta=False`` leaves out the remaining-time estimate (a
    loop that may stop early has none worth showing). When stderr is not a
    terminal (a redirected log) plain lines, about ten per loop, replace the
    bar's ``\\r`` frames.
    """
    if not verbose:
        return tqdm(total=total, disable=True)
    if not _interactive():
        return _LogLines(total, desc, unit)
    fmt = None
    if not eta:
        fmt = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}{postfix}]"
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        leave=verbose > 1,
        bar_format=fmt,
        file=sys.stderr,
    )


def _interactive() -> bool:
    if "ipykernel" in sys.modules:  # notebooks: tqdm.auto draws a widget
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class _LogLines:
    """The part of tqdm's interface the loops use, as plain lines on stderr."""

    def __init__(self, total: int, desc: str, unit: str):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0
        self.postfix: dict = {}
        self.every = max(1, math.ceil(total / 10)) if total else 1

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def update(self, n: int = 1) -> None:
        before, self.n = self.n, self.n + n
        if self.n // self.every > before // self.every or self.n == self.total:
            values = "".join(f", {k}={v}" for k, v in self.postfix.items())
            self.write(f"{self.desc}: {self.n}/{self.total} {self.unit}{values}")

    def write(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass
