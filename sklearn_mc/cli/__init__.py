"""The ``sklearn-mc`` command: complete a table from the shell.

``sklearn-mc impute IN -o OUT --method svd --param rank=8``
    fill the missing cells of a CSV / TSV / Parquet file (``-``: stdin/stdout);
``sklearn-mc evaluate IN``
    hide some observed cells of your table and rank the methods on them;
``sklearn-mc demo [--quick]``
    run every imputer of the package on built-in examples and print a table;
``sklearn-mc methods [NAME]``
    list the method names, or the parameters of one.

The package is split by job: ``_parser`` (arguments, standard library only),
``_io`` (reading and atomically writing tables), ``_impute`` (the ``impute``
and ``methods`` commands and what they share with ``evaluate``), ``_evaluate``
and ``_demo``. Heavy imports (torch, pandas, scikit-learn) happen only once a
command runs, so that ``--help`` answers at once. Every expected failure
(missing file, ragged rows, non-numeric column, bad parameter) is reported as
one line on stderr with a non-zero exit status, never as a traceback; library
warnings are one line each too, and ``-q`` silences them.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from ._common import EXIT_ERROR, CLIError, error_message, show_warning
from ._parser import build_parser, parse_param

__all__ = ["EXIT_ERROR", "CLIError", "build_parser", "main", "parse_param"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sklearn-mc`` console script.

    Parameters
    ----------
    argv : sequence of str or None, default=None
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success, 1 on an error, 2 on a usage error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            # One line per warning on stderr, none at all with -q; the filters
            # and printer are restored when the command ends.
            warnings.showwarning = show_warning
            if getattr(args, "quiet", False):
                warnings.simplefilter("ignore")
            module, _, func = args.handler.partition(":")
            handler = getattr(importlib.import_module(module), func)
            return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("sklearn-mc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        if args.traceback:
            raise
        print(f"sklearn-mc: error: {error_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
