"""The argument parser of ``sklearn-mc`` and the ``--param`` reader.

Only the standard library and :mod:`sklearn_mc._registry`'s static index are
imported here, so that ``sklearn-mc --help`` answers without importing torch,
numpy or pandas.
"""

from __future__ import annotations

import argparse
import ast
import shutil

from .._registry import METHODS
from ._common import CLIError

#: what each subcommand runs, as "module:function" (imported when it runs).
HANDLERS = {
    "impute": "sklearn_mc.cli._impute:cmd_impute",
    "evaluate": "sklearn_mc.cli._evaluate:cmd_evaluate",
    "demo": "sklearn_mc.cli._demo:cmd_demo",
    "methods": "sklearn_mc.cli._impute:cmd_methods",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sklearn-mc`` (also used by the docs).

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    names = ", ".join(info.name for info in METHODS)
    parser = argparse.ArgumentParser(
        prog="sklearn-mc",
        description=_wrap(
            "Matrix-completion imputers for tables with missing values: fill the "
            "empty cells of a CSV/TSV/Parquet file, rank the methods on your own "
            "table, or compare them on built-in examples."
        ),
        epilog=(
            "examples:\n"
            "  sklearn-mc impute data.csv -o filled.csv --method svd --param rank=8\n"
            "  cat data.csv | sklearn-mc impute - -o - --method knn > filled.csv\n"
            "  sklearn-mc impute data.tsv -o filled.parquet --index-col 0 --clip "
            "--report\n"
            "  sklearn-mc evaluate data.csv --fast --methods svd,knn,mlp\n"
            "  sklearn-mc demo --quick\n"
            "  sklearn-mc methods svd\n\n"
            "Run 'sklearn-mc COMMAND --help' for the options of a command."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .. import __version__

    parser.add_argument(
        "--version", action="version", version=f"sklearn-mc {__version__}"
    )
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="show the full Python traceback on errors (for bug reports)",
    )
    # Accepted after the command too; SUPPRESS keeps the value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--traceback",
        action="store_true",
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    table = _table_options()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    imp = sub.add_parser(
        "impute",
        parents=[table, common],
        help="fill the missing cells of a CSV, TSV or Parquet file",
        description=_wrap(
            "Fill the missing cells of a table. Empty cells (and NA, NaN, ...) "
            "are missing. The header row and index columns are kept; the "
            "numeric columns are completed, observed cells are written back "
            "unchanged, integer columns stay integer (imputed cells rounded). "
            "Formats follow the file suffix (.csv, .tsv, .parquet, optionally "
            "compressed: .csv.gz) unless --sep is given; '-' reads standard "
            "input. The output is written to a temporary file and renamed, so a "
            "failed run never leaves a half-written file (and -o may be IN)."
        ),
        epilog=_methods_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        required=True,
        help="output file; its suffix picks the format ('-': CSV on stdout)",
    )
    _method_options(imp, names)
    imp.add_argument(
        "--float-format",
        default=None,
        metavar="FMT",
        help="printf-style format of the imputed floats in text output, e.g. "
        "'%%.3f' (observed cells are written as read)",
    )
    imp.add_argument(
        "--report",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="write a report (filled cells per column, settings, stop reason, "
        "time) to FILE, or to stderr without FILE",
    )
    imp.add_argument(
        "--report-format",
        choices=("text", "json"),
        default=None,
        help="format of --report (default: json for a .json FILE, else text)",
    )
    _verbosity(imp)
    imp.set_defaults(handler=HANDLERS["impute"])

    ev = sub.add_parser(
        "evaluate",
        parents=[table, common],
        help="rank the methods on your own table by hiding observed cells",
        description=_wrap(
            "Hide a fraction of the observed cells of your table, complete it "
            "with each method and rank the methods by their error on the hidden "
            "cells (RMSE in units of each column's standard deviation: filling "
            "the column mean scores about 1, lower is better). The command-line "
            "analogue of sklearn_mc.metrics / model_selection scoring: use it "
            "to choose --method for 'sklearn-mc impute'."
        ),
        epilog=_methods_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument(
        "--methods",
        default=None,
        metavar="NAME[,NAME...]",
        help=f"methods to compare (default: all of {names})",
    )
    ev.add_argument(
        "--fraction",
        type=float,
        default=0.1,
        help="fraction of the observed cells to hide (default: 0.1)",
    )
    ev.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="number of random hidings averaged over (default: 1)",
    )
    ev.add_argument(
        "--fast",
        action="store_true",
        help="fewer iterations for the iterative methods (seconds, not minutes)",
    )
    ev.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="parameter for every method that has it, repeatable",
    )
    ev.add_argument("--device", default=None, help="torch device (default: auto)")
    ev.add_argument(
        "--seed", type=int, default=0, help="seed of the hiding and fits (default: 0)"
    )
    ev.add_argument(
        "--json", action="store_true", help="print the ranking as JSON on stdout"
    )
    _verbosity(ev)
    ev.set_defaults(handler=HANDLERS["evaluate"])

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="compare all imputers on built-in examples and print a table",
        description=_wrap(
            "Hide 30 % of the entries of built-in examples (a 200x50 rank-5 "
            "matrix, scikit-learn's diabetes table in raw units, a 300x200 "
            "1-5 star ratings matrix with 15 % observed), complete them with "
            "every sklearn_mc imputer and with scikit-learn's SimpleImputer, "
            "KNNImputer and IterativeImputer, and print the error on the "
            "hidden entries and the fit time. Errors are RMSEs in units of "
            "each column's standard deviation, so filling the column mean "
            "scores about 1."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="smaller examples and fewer iterations (a smoke test)",
    )
    demo.add_argument(
        "--methods",
        default=None,
        metavar="NAME[,NAME...]",
        help="only these sklearn_mc methods (default: every one)",
    )
    demo.add_argument("--device", default=None, help="torch device (default: auto)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument(
        "--no-peers", action="store_true", help="skip the scikit-learn imputers"
    )
    demo.set_defaults(handler=HANDLERS["demo"])

    methods = sub.add_parser(
        "methods",
        parents=[common],
        help="list the methods, or the parameters of one",
        description="List the --method names, their classes and parameters.",
    )
    methods.add_argument(
        "name", nargs="?", default=None, help="show the parameters of this method"
    )
    methods.set_defaults(handler=HANDLERS["methods"])
    return parser


def _table_options() -> argparse.ArgumentParser:
    """Options shared by the commands that read a table."""
    table = argparse.ArgumentParser(add_help=False)
    table.add_argument(
        "input", metavar="IN", help="input file (.csv, .tsv, .parquet; '-': stdin)"
    )
    table.add_argument(
        "--index-col",
        default=None,
        metavar="N[,N...]",
        help="column(s) to keep as the row index: 0-based positions or names",
    )
    table.add_argument(
        "--columns",
        default=None,
        metavar="C[,C...]",
        help="impute (and learn from) only these columns; the others are copied "
        "untouched",
    )
    table.add_argument(
        "--exclude",
        default=None,
        metavar="C[,C...]",
        help="copy these columns untouched and do not learn from them",
    )
    table.add_argument(
        "--sep",
        default=None,
        help="field separator of text input (default: from the suffix, ',' for "
        "stdin; '\\t' = tab)",
    )
    table.add_argument(
        "--no-header",
        action="store_true",
        help="the file has no header row (columns are numbered from 0)",
    )
    table.add_argument(
        "--na-values",
        default=None,
        metavar="S[,S...]",
        help="extra strings that mark a missing cell, e.g. '?,-'",
    )
    table.add_argument(
        "--passthrough-non-numeric",
        action="store_true",
        help="copy non-numeric columns to the output untouched (they are not "
        "used for the imputation); without it such columns are an error",
    )
    table.add_argument(
        "--clip",
        action="store_true",
        help="clip imputed values to the observed range of their column",
    )
    return table


def _method_options(parser: argparse.ArgumentParser, names: str) -> None:
    parser.add_argument(
        "-m",
        "--method",
        default="svd",
        metavar="NAME",
        help=f"imputation method, one of: {names} (default: svd)",
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=(
            "estimator parameter, repeatable (e.g. --param rank=8 --param "
            "max_iter=200); VALUE is read as a Python literal, else as a string"
        ),
    )
    parser.add_argument(
        "--device",
        default=None,
        help="torch device: auto (default), cpu, cuda, cuda:1, mps",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed (random_state)"
    )


def _verbosity(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress and no warnings on stderr (errors still are)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=1,
        help="more progress detail on stderr (repeatable)",
    )


def _wrap(text: str) -> str:
    """Wrap a description for the raw help formatter (which keeps epilogs)."""
    import textwrap

    return textwrap.fill(text, width=min(shutil.get_terminal_size().columns, 80) - 2)


def _methods_epilog() -> str:
    width = max(len(info.name) for info in METHODS)
    lines = ["methods (see 'sklearn-mc methods NAME' for their parameters):"]
    lines += [f"  {info.name:<{width}}  {info.summary}" for info in METHODS]
    lines += [
        "",
        "Non-numeric columns are refused unless --passthrough-non-numeric is",
        "given; columns with no observed value are left empty. A fit that may",
        "take minutes is announced with an estimate before it starts.",
    ]
    return "\n".join(lines)


def parse_param(text: str) -> tuple[str, object]:
    """Split ``KEY=VALUE``; VALUE is a Python literal if it parses as one.

    Parameters
    ----------
    text : str
        The argument of ``--param``.

    Returns
    -------
    key : str
    value : object
        ``ast.literal_eval(VALUE)``, or VALUE itself as a string.

    Examples
    --------
    >>> parse_param("rank=8")
    ('rank', 8)
    >>> parse_param("hidden_layer_sizes=(64, 32)")
    ('hidden_layer_sizes', (64, 32))
    >>> parse_param("solver=als")
    ('solver', 'als')
    >>> parse_param("rank=None")
    ('rank', None)
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise CLIError(f"--param expects KEY=VALUE, got {text!r}")
    raw = raw.strip()
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = raw
    return key, value
