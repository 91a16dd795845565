"""Shared pieces of the command line: the error type, logging, warnings."""

from __future__ import annotations

import sys

#: exit status of a failed command (argparse uses 2 for usage errors).
EXIT_ERROR = 1


class CLIError(Exception):
    """An expected failure, reported as one line on stderr."""


def log(quiet: bool, message: str) -> None:
    """Print a progress line on stderr unless ``quiet``."""
    if not quiet:
        print(f"sklearn-mc: {message}", file=sys.stderr, flush=True)


def one_line(text: object) -> str:
    """``text`` with every run of white space (newlines too) made one space."""
    return " ".join(str(text).split())


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the command line: one line, no source."""
    name = getattr(category, "__name__", "Warning")
    prefix = "" if name in ("UserWarning", "Warning") else f"{name}: "
    print(
        f"sklearn-mc: warning: {prefix}{one_line(message)}",
        file=sys.stderr,
        flush=True,
    )


def error_message(exc: BaseException) -> str:
    """The one-line message for an exception that ends a command."""
    text = one_line(exc)
    if isinstance(exc, CLIError):
        return text
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        name = exc.filename or ""
        return f"{name}: {exc.strerror}" if name else text
    if isinstance(exc, ValueError | TypeError):
        return text
    return f"{type(exc).__name__}: {text}"
