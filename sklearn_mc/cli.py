"""The ``sklearn-mc`` command: complete a table from the shell.

``sklearn-mc impute IN -o OUT --method svd --param rank=8``
    fill the missing cells of a CSV / TSV / Parquet file;
``sklearn-mc demo [--quick]``
    run every imputer of the package on built-in examples and print a table;
``sklearn-mc methods``
    list the method names and their parameters.

Heavy imports (torch, pandas, scikit-learn) happen only once a command runs,
so that ``--help`` answers at once. Every expected failure (missing file,
ragged rows, non-numeric column, bad parameter) is reported as one line on
stderr with a non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import argparse
import ast
import csv
import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

#: exit status of a failed command (argparse uses 2 for usage errors).
EXIT_ERROR = 1

#: ``--method`` names and the classes they stand for. Looked up lazily, so that
#: a method missing from this installation gives a clean error, not a crash.
METHODS: dict[str, str] = {
    "svd": "SVDImputer",
    "knn": "KNNImputer",
    "sgd-mf": "SGDMFImputer",
    "deep-mf": "DeepMFImputer",
    "air-net": "AIRNetImputer",
    "mlp": "MLPImputer",
    "dmf": "DMFImputer",
}

#: one-line summaries shown by ``sklearn-mc methods`` and ``impute --help``.
METHOD_SUMMARIES: dict[str, str] = {
    "svd": "iterative truncated SVD / SoftImpute (fast, needs a rank or picks one)",
    "knn": "nan-euclidean k nearest neighbours (no model, any table)",
    "sgd-mf": "matrix factorisation by SGD on observed entries (ratings)",
    "deep-mf": "deep linear factorisation, implicit low-rank bias (images)",
    "air-net": "deep factorisation + learned Laplacian regularisers (images)",
    "mlp": "autoencoder-style MLP, inductive (tables, new rows)",
    "dmf": "two-branch deep MF, cosine output (ratings, new users/items)",
}

#: file suffixes and the separator they imply ("parquet" for Parquet files).
_FORMATS = {
    ".csv": ",",
    ".tsv": "\t",
    ".tab": "\t",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".zip", ".xz", ".zst"}

#: Demo settings: modest, so that the whole demo takes one to two minutes on
#: two CPU cores; ``--quick`` applies the second dict on top (a smoke test).
#: Only the keys a class accepts are applied. The deep factorisations get a
#: step of 1e-2 (instead of 1e-3) and an iteration cap: with those they reach
#: most of their accuracy in seconds.
DEMO_PARAMS: dict[str, dict] = {
    "DeepMFImputer": {"learning_rate": 1e-2, "max_iter": 2000},
    "AIRNetImputer": {"learning_rate": 1e-2, "max_iter": 600},
    "DMFImputer": {"max_iter": 50},
}
DEMO_QUICK_PARAMS: dict[str, dict] = {
    "SGDMFImputer": {"max_iter": 200},
    "DeepMFImputer": {"max_iter": 500},
    "AIRNetImputer": {"max_iter": 200},
    "MLPImputer": {"max_iter": 50},
    "DMFImputer": {"max_iter": 20},
}


class CLIError(Exception):
    """An expected failure, reported as one line on stderr."""


# --------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sklearn-mc`` (also used by the docs)."""
    parser = argparse.ArgumentParser(
        prog="sklearn-mc",
        description=_wrap(
            "Matrix-completion imputers for tables with missing values: fill the "
            "empty cells of a CSV/TSV/Parquet file, or compare the methods on "
            "built-in examples."
        ),
        epilog=(
            "examples:\n"
            "  sklearn-mc demo --quick\n"
            "  sklearn-mc impute data.csv -o filled.csv --method svd --param rank=8\n"
            "  sklearn-mc impute data.tsv -o filled.parquet --method knn "
            "--param n_neighbors=10 --index-col 0\n"
            "  sklearn-mc methods\n\n"
            "Run 'sklearn-mc COMMAND --help' for the options of a command."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="show the full Python traceback on errors (for bug reports)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    imp = sub.add_parser(
        "impute",
        help="fill the missing cells of a CSV, TSV or Parquet file",
        description=_wrap(
            "Fill the missing cells of a table. Empty cells (and NA, NaN, ...) "
            "are missing. The header row and index columns are kept; the "
            "numeric columns are completed and observed cells are written back "
            "unchanged. Formats follow the file suffix (.csv, .tsv, .parquet, "
            "optionally compressed: .csv.gz) unless --sep is given."
        ),
        epilog=_methods_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("input", metavar="IN", help="input file (.csv, .tsv, .parquet)")
    imp.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        required=True,
        help="output file; its suffix picks the format ('-': CSV on stdout)",
    )
    imp.add_argument(
        "-m",
        "--method",
        default="svd",
        metavar="NAME",
        help=f"imputation method, one of: {', '.join(METHODS)} (default: svd)",
    )
    imp.add_argument(
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
    imp.add_argument(
        "--device",
        default=None,
        help="torch device: auto (default), cpu, cuda, cuda:1, mps",
    )
    imp.add_argument(
        "--seed", type=int, default=None, help="random seed (random_state)"
    )
    imp.add_argument(
        "--index-col",
        default=None,
        metavar="N[,N...]",
        help="column(s) to keep as the row index: 0-based positions or names",
    )
    imp.add_argument(
        "--sep",
        default=None,
        help="field separator of text files (default: from the suffix; '\\t' = tab)",
    )
    imp.add_argument(
        "--no-header",
        action="store_true",
        help="the file has no header row (columns are numbered)",
    )
    imp.add_argument(
        "--na-values",
        default=None,
        metavar="S[,S...]",
        help="extra strings that mark a missing cell, e.g. '?,-'",
    )
    imp.add_argument(
        "--passthrough-non-numeric",
        action="store_true",
        help=(
            "copy non-numeric columns to the output untouched (they are not "
            "used for the imputation); without it such columns are an error"
        ),
    )
    imp.add_argument(
        "--float-format",
        default=None,
        metavar="FMT",
        help="printf-style format of floats in text output, e.g. '%%.6g'",
    )
    verbosity = imp.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-q", "--quiet", action="store_true", help="no progress on stderr"
    )
    verbosity.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=1,
        help="more progress detail on stderr (repeatable)",
    )
    imp.set_defaults(func=cmd_impute)

    demo = sub.add_parser(
        "demo",
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
        help="smaller examples and fewer iterations (a smoke test, seconds)",
    )
    demo.add_argument(
        "--methods",
        default=None,
        metavar="NAME[,NAME...]",
        help="only these sklearn_mc methods (default: every one installed)",
    )
    demo.add_argument("--device", default=None, help="torch device (default: auto)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument(
        "--no-peers", action="store_true", help="skip the scikit-learn imputers"
    )
    demo.set_defaults(func=cmd_demo)

    methods = sub.add_parser(
        "methods",
        help="list the methods and their parameters",
        description="List the --method names, their classes and parameters.",
    )
    methods.set_defaults(func=cmd_methods)
    return parser


def _wrap(text: str) -> str:
    """Wrap a description for the raw help formatter (which keeps epilogs)."""
    import textwrap

    return textwrap.fill(text, width=min(shutil.get_terminal_size().columns, 80) - 2)


def _version() -> str:
    try:
        from importlib.metadata import version

        return f"sklearn-mc {version('sklearn_mc')}"
    except Exception:  # pragma: no cover - not installed as a distribution
        return "sklearn-mc (version unknown)"


def _methods_epilog() -> str:
    lines = ["methods (see 'sklearn-mc methods' for their parameters):"]
    lines += [f"  {name:<8} {METHOD_SUMMARIES.get(name, '')}" for name in METHODS]
    lines += [
        "",
        "Non-numeric columns are refused unless --passthrough-non-numeric is",
        "given; columns with no observed value are left empty.",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------- helpers
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


def resolve_method(name: str):
    """The imputer class behind a ``--method`` name (or a class name)."""
    key = name.strip().lower().replace("_", "-")
    by_class = {cls.lower(): meth for meth, cls in METHODS.items()}
    key = by_class.get(key, key)
    if key not in METHODS:
        raise CLIError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    import sklearn_mc

    cls = getattr(sklearn_mc, METHODS[key], None)
    if cls is None:
        available = [m for m, c in METHODS.items() if hasattr(sklearn_mc, c)]
        raise CLIError(
            f"method {key!r} ({METHODS[key]}) is not available in this "
            f"installation of sklearn_mc; available: {', '.join(available) or 'none'}"
        )
    return cls


def make_estimator(cls, params: dict, *, device=None, seed=None, verbose=None):
    """Instantiate ``cls`` with user parameters, checking their names."""
    valid = cls().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise CLIError(
            f"{cls.__name__} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(sorted(valid))}"
        )
    kwargs = dict(params)
    for key, value in (("device", device), ("random_state", seed)):
        if value is not None and key in valid:
            kwargs.setdefault(key, value)
    if verbose is not None and "verbose" in valid:
        kwargs.setdefault("verbose", verbose)
    return cls(**kwargs)


def _file_kind(path: str, sep: str | None) -> str:
    """The separator of a text file, or "parquet"."""
    if sep is not None:
        return "\t" if sep in ("\\t", "tab", "TAB") else sep
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in _FORMATS:
        return _FORMATS[suffix]
    raise CLIError(
        f"cannot tell the format of {path!r} from its suffix; use .csv, .tsv or "
        ".parquet, or give --sep"
    )


def _output_kind(output: str, input_path: str, sep: str | None) -> str:
    """Format of the output: its suffix, else --sep; stdout gets the input's."""
    if output == "-":
        kind = _file_kind(input_path, sep)
        return "," if kind == "parquet" else kind
    try:
        return _file_kind(output, None)
    except CLIError:
        if sep is None:
            raise
        return _file_kind(output, sep)


def _need_parquet() -> None:
    if importlib.util.find_spec("pyarrow") is None and (
        importlib.util.find_spec("fastparquet") is None
    ):
        raise CLIError(
            "Parquet files need pyarrow: pip install pyarrow (or use CSV/TSV)"
        )


def _check_rectangular(path: str, sep: str) -> None:
    """Refuse ragged text files (pandas would pad short rows with NaN)."""
    if len(sep) != 1:
        return  # regex separators: left to pandas
    try:
        # pandas' opener, so that compressed files are read like read_csv does.
        from pandas.io.common import get_handle
    except ImportError:  # pragma: no cover - a future pandas moved it
        return
    with get_handle(
        path, "r", compression="infer", encoding="utf-8", errors="replace"
    ) as handles:
        reader = csv.reader(handles.handle, delimiter=sep)
        width = None
        for row in reader:
            if not row:
                continue  # blank lines are skipped by pandas too
            if width is None:
                width = len(row)
            elif len(row) != width:
                raise CLIError(
                    f"{path}: ragged rows: line {reader.line_num} has {len(row)} "
                    f"fields, the first line has {width}"
                )


def _parse_index_col(text: str | None):
    if text is None:
        return None
    cols = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        cols.append(int(part) if part.lstrip("-").isdigit() else part)
    if not cols:
        return None
    return cols


def _check_input_path(path: str) -> None:
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory, not a file")


def read_table(
    path: str,
    *,
    sep: str | None = None,
    index_col: str | None = None,
    header: bool = True,
    na_values: str | None = None,
):
    """Read ``path`` into a DataFrame (CSV/TSV/Parquet), checking its shape."""
    import pandas as pd

    _check_input_path(path)
    kind = _file_kind(path, sep)
    index_cols = _parse_index_col(index_col)
    if kind == "parquet":
        _need_parquet()
        try:
            df = pd.read_parquet(path)
        except Exception as exc:
            raise CLIError(f"{path}: not a readable Parquet file ({exc})") from exc
        if index_cols is not None:
            names = [df.columns[c] if isinstance(c, int) else c for c in index_cols]
            missing = [n for n in names if n not in df.columns]
            if missing:
                raise CLIError(f"{path}: no index column {missing[0]!r}")
            df = df.set_index(names)
        return df, kind
    _check_rectangular(path, kind)
    extra_na = None
    if na_values:
        extra_na = [v for v in na_values.split(",") if v != ""] or None
    try:
        df = pd.read_csv(
            path,
            sep=kind,
            header=0 if header else None,
            index_col=index_cols,
            na_values=extra_na,
            engine="c" if len(kind) == 1 else "python",
        )
    except pd.errors.EmptyDataError as exc:
        raise CLIError(f"{path}: empty file") from exc
    except pd.errors.ParserError as exc:
        msg = " ".join(str(exc).split())
        raise CLIError(f"{path}: cannot parse ({msg})") from exc
    except (IndexError, KeyError, ValueError) as exc:
        if index_cols is not None:
            raise CLIError(f"{path}: bad --index-col {index_col!r} ({exc})") from exc
        raise
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path}: not a UTF-8 text file ({exc.reason})") from exc
    return df, kind


def write_table(df, path: str, kind: str, *, header: bool, float_format=None):
    """Write ``df`` like the input was read (index only if it carries data)."""
    import pandas as pd

    write_index = not isinstance(df.index, pd.RangeIndex) or df.index.name is not None
    if kind == "parquet":
        _need_parquet()
        out = df.copy()
        out.columns = [str(c) for c in out.columns]
        out.to_parquet(path, index=write_index)
        return
    target = sys.stdout if path == "-" else path
    df.to_csv(
        target,
        sep=kind,
        header=header,
        index=write_index,
        float_format=float_format,
        lineterminator="\n",
    )


def _split_columns(df, path: str, passthrough: bool):
    """Names of the numeric columns; refuse or pass through the others."""
    import pandas as pd

    numeric, other = [], []
    for col in df.columns:
        dtype = df[col].dtype
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(
            dtype
        ):
            numeric.append(col)
        else:
            other.append(col)
    if other and not passthrough:
        col = other[0]
        values = df[col].dropna()
        example = ""
        if len(values):
            example = f" (e.g. {str(values.iloc[0])!r})"
        more = f" and {len(other) - 1} more" if len(other) > 1 else ""
        raise CLIError(
            f"{path}: column {str(col)!r}{more} is not numeric{example}; drop it, "
            "mark its missing cells with --na-values, or pass "
            "--passthrough-non-numeric to copy it to the output untouched"
        )
    return numeric, other


def _log(quiet: bool, message: str) -> None:
    if not quiet:
        print(f"sklearn-mc: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ commands
def cmd_impute(args: argparse.Namespace) -> int:
    """``sklearn-mc impute``."""
    quiet = args.quiet
    verbose = 0 if quiet else args.verbose
    _check_input_path(args.input)
    params = dict(parse_param(p) for p in args.param)
    cls = resolve_method(args.method)
    # Build and validate the estimator before reading a possibly large file.
    estimator = make_estimator(
        cls, params, device=args.device, seed=args.seed, verbose=verbose
    )
    estimator._validate_params()
    if "device" in estimator.get_params():
        from ._torch import resolve_device

        resolve_device(estimator.device)  # an unavailable device fails now
    out_kind = _output_kind(args.output, args.input, args.sep)
    df, _ = read_table(
        args.input,
        sep=args.sep,
        index_col=args.index_col,
        header=not args.no_header,
        na_values=args.na_values,
    )
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise CLIError(f"{args.input}: no data rows or no data columns")
    numeric, other = _split_columns(df, args.input, args.passthrough_non_numeric)
    if not numeric:
        raise CLIError(f"{args.input}: no numeric column to impute")

    import numpy as np

    X = df[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.isnan(X)
    empty = missing.all(axis=0)
    n_missing = int(missing[:, ~empty].sum())
    if empty.all():
        raise CLIError(f"{args.input}: no observed value in any numeric column")
    _log(
        quiet,
        f"read {args.input}: {df.shape[0]} rows, {len(numeric)} numeric columns"
        + (f", {len(other)} passed through" if other else "")
        + f", {n_missing} missing cells ({n_missing / max(X.size, 1):.1%})",
    )
    if empty.any():
        names = ", ".join(repr(str(c)) for c in np.asarray(numeric)[empty][:3])
        _log(
            quiet,
            f"{int(empty.sum())} column(s) with no observed value left empty: {names}",
        )
    filled_cols = [c for c, e in zip(numeric, empty, strict=True) if not e]
    if n_missing == 0:
        _log(quiet, "nothing to impute; writing the table unchanged")
    else:
        _log(quiet, f"fitting {_describe(estimator)}")
        start = time.perf_counter()
        completed = estimator.fit_transform(X[:, ~empty])
        _log(quiet, f"done in {time.perf_counter() - start:.2f} s")
        completed = np.asarray(completed, dtype=np.float64)
        for j, col in enumerate(filled_cols):
            if missing[:, ~empty][:, j].any():
                df[col] = completed[:, j]
    write_table(
        df,
        args.output,
        out_kind,
        header=not args.no_header,
        float_format=args.float_format,
    )
    if args.output != "-":
        _log(quiet, f"wrote {args.output}")
    return 0


def _describe(estimator) -> str:
    """``Class(param=value, ...)`` with the parameters that differ from defaults."""
    defaults = type(estimator)().get_params()
    changed = {
        k: v
        for k, v in estimator.get_params().items()
        if k != "verbose" and repr(v) != repr(defaults.get(k))
    }
    inner = ", ".join(f"{k}={v!r}" for k, v in changed.items())
    name = type(estimator).__name__
    if not type(estimator).__module__.startswith("sklearn_mc"):
        name = f"sklearn {name}"
    return f"{name}({inner})"


def cmd_methods(args: argparse.Namespace) -> int:
    """``sklearn-mc methods``."""
    import sklearn_mc

    for name, cls_name in METHODS.items():
        cls = getattr(sklearn_mc, cls_name, None)
        status = "" if cls is not None else "  [not installed]"
        print(f"{name:<8} {cls_name:<14} {METHOD_SUMMARIES.get(name, '')}{status}")
        if cls is not None:
            params = cls().get_params()
            text = ", ".join(f"{k}={v!r}" for k, v in params.items())
            print(f"{'':<8} {text}")
    return 0


# ---------------------------------------------------------------------- demo
def _demo_datasets(quick: bool, seed: int):
    """(name, X_true, X_missing) triples of the demo."""
    import numpy as np
    from sklearn.datasets import load_diabetes

    from .datasets import make_low_rank, make_mask

    rng = np.random.default_rng(seed)
    out = []
    shape = (100, 30) if quick else (200, 50)
    X = make_low_rank(*shape, 5, random_state=seed)
    out.append((f"low-rank {shape[0]}x{shape[1]} r5", X, 0.3))

    diabetes = load_diabetes(scaled=False).data
    if quick:
        diabetes = diabetes[:150]
    out.append((f"diabetes {diabetes.shape[0]}x{diabetes.shape[1]}", diabetes, 0.3))

    n_users, n_items = (150, 100) if quick else (300, 200)
    ratings, observed = _demo_ratings(n_users, n_items, seed)
    out.append((f"ratings {n_users}x{n_items} 1-5", ratings, observed))

    triples = []
    for k, (name, X, rate) in enumerate(out):
        if isinstance(rate, float):
            mask = make_mask(
                X.shape, "random", missing_rate=rate, random_state=seed + k
            )
        else:
            mask = ~rate
        # Keep every column and row observed at least once so that every peer
        # can run (scikit-learn's imputers drop all-missing columns).
        mask[rng.integers(0, X.shape[0], X.shape[1]), np.arange(X.shape[1])] = False
        mask[np.arange(X.shape[0]), rng.integers(0, X.shape[1], X.shape[0])] = False
        X_missing = X.astype(np.float64, copy=True)
        X_missing[mask] = np.nan
        triples.append((name, X, X_missing))
    return triples


def _demo_ratings(n_users: int, n_items: int, seed: int):
    """A 1-5 star matrix, 15 % observed: ``(ratings, observed mask)``."""
    import numpy as np

    from . import datasets

    if hasattr(datasets, "make_ratings"):
        X, X_full = datasets.make_ratings(
            n_users, n_items, 5, density=0.15, random_state=seed, return_truth=True
        )
        return X_full, ~np.isnan(X)
    # Fallback: a rank-4 taste model rounded to stars, missing at random.
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n_users, 4)) @ rng.standard_normal((4, n_items))
    X_full = np.clip(np.round(3.0 + scores / 2.0), 1, 5)
    return X_full, rng.random(X_full.shape) < 0.15


def _demo_error(X_true, X_pred, X_missing) -> float:
    import numpy as np

    hidden = np.isnan(X_missing)
    std = X_true.std(axis=0)
    std[std == 0] = 1.0
    diff = (X_pred - X_true) / std
    return float(np.sqrt(np.mean(diff[hidden] ** 2)))


def _demo_candidates(args) -> list[tuple[str, object]]:
    import inspect

    import sklearn_mc
    from sklearn_mc._base import BaseMatrixImputer

    exported = {
        name: getattr(sklearn_mc, name)
        for name in sklearn_mc.__all__
        if inspect.isclass(getattr(sklearn_mc, name))
        and issubclass(getattr(sklearn_mc, name), BaseMatrixImputer)
    }
    if args.methods:
        wanted = [resolve_method(m) for m in args.methods.split(",") if m.strip()]
    else:
        order = [c for c in METHODS.values() if c in exported]
        order += sorted(set(exported) - set(order))
        wanted = [exported[c] for c in order]
    candidates = []
    for cls in wanted:
        params = dict(DEMO_PARAMS.get(cls.__name__, {}))
        if args.quick:
            params.update(DEMO_QUICK_PARAMS.get(cls.__name__, {}))
        valid = cls().get_params()
        params = {k: v for k, v in params.items() if k in valid}
        est = make_estimator(cls, params, device=args.device, seed=args.seed)
        candidates.append((cls.__name__, est))
    if not args.no_peers:
        from sklearn.experimental import enable_iterative_imputer  # noqa: F401
        from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

        candidates += [
            ("sklearn SimpleImputer(mean)", SimpleImputer()),
            ("sklearn KNNImputer", KNNImputer()),
            (
                "sklearn IterativeImputer",
                IterativeImputer(
                    max_iter=10, n_nearest_features=20, random_state=args.seed
                ),
            ),
        ]
    return candidates


def cmd_demo(args: argparse.Namespace) -> int:
    """``sklearn-mc demo``."""
    import warnings

    import numpy as np
    from sklearn.base import clone

    datasets = _demo_datasets(args.quick, args.seed)
    candidates = _demo_candidates(args)
    if not candidates:
        raise CLIError("no imputer to run")
    header = ["method"]
    for name, _, _ in datasets:
        header += [f"{name} error", "time s"]
    rows = []
    total = time.perf_counter()
    for label, estimator in candidates:
        row = [label]
        for name, X, X_missing in datasets:
            print(f"sklearn-mc: {label} on {name} ...", file=sys.stderr, flush=True)
            est = clone(estimator)
            start = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    X_pred = np.asarray(est.fit_transform(X_missing), dtype=float)
            except Exception as exc:  # one failing method must not end the demo
                elapsed = time.perf_counter() - start
                msg = " ".join(str(exc).split())[:120]
                print(f"sklearn-mc: {label} failed: {msg}", file=sys.stderr)
                row += ["failed", f"{elapsed:.2f}"]
                continue
            elapsed = time.perf_counter() - start
            row += [f"{_demo_error(X, X_pred, X_missing):.3f}", f"{elapsed:.2f}"]
        rows.append(row)
    print(_markdown_table(header, rows))
    print()
    print(
        "error: RMSE on the hidden entries in units of each column's standard "
        "deviation (mean imputation ~ 1; lower is better). Hidden: 30 % of "
        "entries (ratings: 15 % observed, popularity-skewed). "
        f"seed={args.seed}, total {time.perf_counter() - total:.1f} s."
    )
    print("settings:")
    for _, estimator in candidates:
        print(f"  {_describe(estimator)}")
    return 0


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(cells, numeric_right=True):
        out = []
        for i, cell in enumerate(cells):
            cell = str(cell)
            out.append(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = (
        "|"
        + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([fmt(header), sep, *(fmt(r) for r in rows)])


# ---------------------------------------------------------------------- main
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
        return int(args.func(args) or 0)
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
        print(f"sklearn-mc: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, CLIError):
        return text
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        name = exc.filename or ""
        return f"{name}: {exc.strerror}" if name else text
    if isinstance(exc, ValueError | TypeError):
        return text
    return f"{type(exc).__name__}: {text}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
