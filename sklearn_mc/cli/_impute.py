"""``sklearn-mc impute`` and ``sklearn-mc methods``, and what ``evaluate`` shares.

The table is split into the columns that are learned from and imputed (the
numeric ones, narrowed by ``--columns`` / ``--exclude``) and the columns that
are copied untouched. Only missing cells of the imputed columns are written:
observed cells keep their values, integer columns stay integer (imputed
values rounded), ``--clip`` bounds imputed values by the observed range of
their column and ``--float-format`` formats imputed cells only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import warnings
from dataclasses import dataclass, field

from .. import _registry
from ._common import CLIError, log, one_line, show_warning
from ._io import (
    STDIO,
    check_float_format,
    check_input_path,
    check_output,
    output_kind,
    read_table,
    write_table,
    write_text,
)
from ._parser import parse_param

#: an estimated fit time above this many seconds is announced with a warning.
SLOW_FIT_SECONDS = 60.0
#: a fully observed integer column of at least this many rows, whose values
#: are unique and increasing, is taken for a row id.
ID_MIN_ROWS = 5


# ----------------------------------------------------------------- estimators
def resolve_method(name: str) -> type:
    """The imputer class behind a ``--method`` name (or a class name)."""
    try:
        return _registry.get_imputer(name)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


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


def check_estimator_settings(estimator) -> None:
    """Validate parameters and device now, before any data is read."""
    estimator._validate_params()
    if "device" in estimator.get_params():
        from .._torch import resolve_device

        resolve_device(estimator.device)  # an unavailable device fails now


def changed_params(estimator) -> dict:
    """The parameters that differ from the class defaults (verbose aside)."""
    defaults = type(estimator)().get_params()
    return {
        k: v
        for k, v in estimator.get_params().items()
        if k != "verbose" and repr(v) != repr(defaults.get(k))
    }


def describe(estimator) -> str:
    """``Class(param=value, ...)`` with the parameters that differ from defaults."""
    inner = ", ".join(f"{k}={v!r}" for k, v in changed_params(estimator).items())
    name = type(estimator).__name__
    if not type(estimator).__module__.startswith("sklearn_mc"):
        name = f"sklearn {name}"
    return f"{name}({inner})"


def warn_if_slow(estimator, n_rows: int, n_cols: int, n_observed: int):
    """Warn before a fit that the cost model says may take minutes.

    Returns the estimate in seconds (None without a cost model).
    """
    seconds = _registry.estimate_fit_seconds(estimator, n_rows, n_cols, n_observed)
    if seconds is not None and seconds > SLOW_FIT_SECONDS:
        cap = estimator.get_params().get("max_iter")
        if _registry.is_iterative(estimator) and isinstance(cap, int):
            shorter = max(int(cap * SLOW_FIT_SECONDS / seconds), 1)
            hint = (
                f"at most max_iter={cap} iterations, early stopping may end it "
                f"sooner; --param max_iter={shorter} would take about a minute"
            )
        else:
            hint = "'knn' is fast; 'sklearn-mc evaluate --fast' compares the methods"
        warnings.warn(
            f"{type(estimator).__name__} on {n_rows}x{n_cols} may take up to "
            f"about {format_seconds(seconds)} ({hint})",
            UserWarning,
            stacklevel=2,
        )
    return seconds


def format_seconds(seconds: float) -> str:
    """``75`` -> ``"1.2 min"``; ``7200`` -> ``"2.0 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@contextlib.contextmanager
def relay_warnings(quiet: bool, sink: list[str]):
    """Record the warnings of a block, then print each once and keep its text.

    The texts go to ``sink`` (for ``--report``); they are printed as one line
    each unless ``quiet``.
    """
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        yield
    for w in records:
        text = one_line(w.message)
        if text not in sink:
            sink.append(text)
            if not quiet:
                show_warning(w.message, w.category, w.filename, w.lineno)


# ---------------------------------------------------------------------- table
@dataclass
class Table:
    """A table read from the command line and the columns to impute."""

    df: object  # pandas.DataFrame
    path: str
    columns: list  # the columns learned from and imputed
    other: list  # copied untouched
    integer: list = field(default_factory=list)  # bool per column of `columns`

    def matrix(self):
        """The imputed columns as a float64 array with NaN for missing."""
        import numpy as np

        return self.df[self.columns].to_numpy(dtype=np.float64, na_value=np.nan)


def _names(text: str | None, df, option: str) -> list | None:
    """Column names from ``--columns a,b`` (names, or 0-based positions)."""
    if text is None:
        return None
    by_str = {str(c): c for c in df.columns}
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part in by_str:
            out.append(by_str[part])
        elif part.lstrip("-").isdigit() and -len(df.columns) <= int(part) < len(
            df.columns
        ):
            out.append(df.columns[int(part)])
        else:
            names = ", ".join(repr(str(c)) for c in list(df.columns)[:8])
            more = ", ..." if len(df.columns) > 8 else ""
            raise CLIError(
                f"{option}: no column {part!r}; the columns are {names}{more}"
            )
    return out


def _is_numeric(series) -> bool:
    import pandas as pd

    dtype = series.dtype
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(
        dtype
    )


def read_columns(args: argparse.Namespace) -> Table:
    """Read ``args.input`` as the options say and split its columns."""
    df, _ = read_table(
        args.input,
        sep=args.sep,
        index_col=args.index_col,
        header=not args.no_header,
        na_values=args.na_values,
    )
    return select_columns(df, args.input, args)


def select_columns(df, path: str, args: argparse.Namespace) -> Table:
    """Split the columns into imputed ones and copied ones (see module doc)."""
    import pandas as pd

    if df.shape[0] == 0 or df.shape[1] == 0:
        raise CLIError(f"{path}: no data rows or no data columns")
    wanted = _names(args.columns, df, "--columns")
    excluded = _names(args.exclude, df, "--exclude") or []
    candidates = [
        c for c in (wanted if wanted is not None else df.columns) if c not in excluded
    ]
    numeric = [c for c in candidates if _is_numeric(df[c])]
    refused = [c for c in candidates if not _is_numeric(df[c])]
    if refused and (wanted is not None or not args.passthrough_non_numeric):
        col = refused[0]
        values = df[col].dropna()
        example = f" (e.g. {str(values.iloc[0])!r})" if len(values) else ""
        more = f" and {len(refused) - 1} more" if len(refused) > 1 else ""
        ways = (
            "mark its missing cells with --na-values, or leave it out of --columns"
            if wanted is not None
            else "drop it with --exclude, mark its missing cells with --na-values, "
            "or pass --passthrough-non-numeric to copy it to the output untouched"
        )
        raise CLIError(
            f"{path}: column {str(col)!r}{more} is not numeric{example}; {ways}"
        )
    if not numeric:
        raise CLIError(f"{path}: no numeric column to impute")
    other = [c for c in df.columns if c not in set(numeric)]
    integer = [pd.api.types.is_integer_dtype(df[c].dtype) for c in numeric]
    return Table(df=df, path=path, columns=numeric, other=other, integer=integer)


def warn_id_like(table: Table) -> None:
    """Warn about integer columns that look like row ids (used as features)."""
    import numpy as np

    for col, is_int in zip(table.columns, table.integer, strict=True):
        series = table.df[col]
        if not is_int or len(series) < ID_MIN_ROWS or series.isna().any():
            continue
        values = series.to_numpy(dtype=np.int64)
        if np.all(np.diff(values) > 0):
            warnings.warn(
                f"column {str(col)!r} looks like a row id (unique increasing "
                "integers) and is used as a feature; pass --index-col "
                f"{str(col)!r} or --exclude {str(col)!r} if it is one",
                UserWarning,
                stacklevel=2,
            )


def observed_range(X):
    """Per-column min and max of the observed entries (NaN for empty columns)."""
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        return np.nanmin(X, axis=0), np.nanmax(X, axis=0)


def postprocess(completed, X, integer, *, clip: bool):
    """Imputed values as they will be written, and how many were clipped.

    Observed entries of ``X`` are copied back exactly; missing ones are
    clipped to their column's observed range (with ``clip``) and rounded in
    integer columns.
    """
    import numpy as np

    missing = np.isnan(X)
    out = np.where(missing, np.asarray(completed, dtype=np.float64), X)
    n_clipped = np.zeros(X.shape[1], dtype=int)
    if clip:
        low, high = observed_range(X)
        clipped = np.clip(out, low, high)
        changed = missing & (clipped != out) & ~np.isnan(low)
        n_clipped = changed.sum(axis=0)
        out = np.where(missing & ~np.isnan(low), clipped, out)
    integer = np.asarray(integer, dtype=bool)
    if integer.any():
        out[:, integer] = np.where(
            missing[:, integer], np.round(out[:, integer]), out[:, integer]
        )
    return out, n_clipped


def _fill_frame(table: Table, values, missing, float_format):
    """A copy of the input frame with the missing cells of the columns filled."""
    import numpy as np
    import pandas as pd

    df = table.df.copy()
    for j, col in enumerate(table.columns):
        rows = missing[:, j] & ~np.isnan(values[:, j])
        if not rows.any():
            continue
        if table.integer[j]:
            filled = df[col].astype("Int64")
            filled[rows] = values[rows, j].astype(np.int64)
            df[col] = filled
        elif float_format is None:
            df[col] = np.where(rows, values[:, j], df[col].to_numpy(dtype=np.float64))
        else:
            # Observed cells as pandas prints floats; imputed ones formatted.
            observed = df[col].to_numpy(dtype=np.float64)
            cells = [
                (float_format % v) if r else (None if np.isnan(o) else repr(float(o)))
                for v, o, r in zip(values[:, j], observed, rows, strict=True)
            ]
            df[col] = pd.Series(cells, index=df.index, dtype=object)
    return df


# ------------------------------------------------------------------- commands
def cmd_impute(args: argparse.Namespace) -> int:
    """``sklearn-mc impute``."""
    import numpy as np

    started = time.perf_counter()
    quiet = args.quiet
    verbose = 0 if quiet else args.verbose
    check_input_path(args.input)
    params = dict(parse_param(p) for p in args.param)
    cls = resolve_method(args.method)
    # Everything that can be checked before reading the data and fitting is.
    estimator = make_estimator(
        cls, params, device=args.device, seed=args.seed, verbose=verbose
    )
    check_estimator_settings(estimator)
    out_kind = output_kind(args.output, args.input, args.sep)
    # A usage error is named before a missing Parquet engine is.
    check_float_format(args.float_format)
    if args.float_format is not None and out_kind == "parquet":
        raise CLIError("--float-format applies to CSV/TSV output, not Parquet")
    check_output(args.output, out_kind)
    report_format = args.report_format
    if args.report is not None:
        if report_format is None:
            report_format = "json" if args.report.lower().endswith(".json") else "text"
        check_output(args.report, ",", what="report")
        if args.report != STDIO and args.report == args.output:
            raise CLIError("--report and -o name the same file")

    table = read_columns(args)
    df = table.df
    X = table.matrix()
    missing = np.isnan(X)
    empty = missing.all(axis=0)
    if empty.all():
        raise CLIError(f"{args.input}: no observed value in any numeric column")
    n_missing = int(missing[:, ~empty].sum())
    log(
        quiet,
        f"read {args.input}: {df.shape[0]} rows, {len(table.columns)} columns to "
        "impute"
        + (f", {len(table.other)} copied untouched" if table.other else "")
        + f", {n_missing} missing cells ({n_missing / max(X.size, 1):.1%})",
    )
    if empty.any():
        names = ", ".join(repr(str(c)) for c in np.asarray(table.columns)[empty][:3])
        log(
            quiet,
            f"{int(empty.sum())} column(s) with no observed value left empty: {names}",
        )
    caught: list[str] = []
    with relay_warnings(quiet, caught):
        warn_id_like(table)
    report = {
        "input": args.input,
        "output": args.output,
        "rows": int(df.shape[0]),
        "method": vars(cls).get("_cli_name", cls.__name__),
        "estimator": cls.__name__,
        "params": changed_params(estimator),
        "clip": bool(args.clip),
        "float_format": args.float_format,
        "copied_columns": [str(c) for c in table.other],
    }
    fitted: dict = {}
    n_clipped = np.zeros(X.shape[1], dtype=int)
    fit_seconds = estimate = None
    if n_missing == 0:
        log(quiet, "nothing to impute; writing the table unchanged")
        out_df = df
    else:
        X_fit = X[:, ~empty]
        with relay_warnings(quiet, caught):
            estimate = warn_if_slow(
                estimator, *X_fit.shape, int((~np.isnan(X_fit)).sum())
            )
        when = ""
        if estimate is not None and estimate >= 5.0:
            when = f" (estimated: up to {format_seconds(estimate)})"
        log(quiet, f"fitting {describe(estimator)}{when}")
        start = time.perf_counter()
        with relay_warnings(quiet, caught):
            completed = estimator.fit_transform(X_fit)
        fit_seconds = time.perf_counter() - start
        fitted = _fitted_summary(estimator)
        extra = ", ".join(f"{k}={v!r}" for k, v in fitted.items())
        log(quiet, f"done in {fit_seconds:.2f} s" + (f" ({extra})" if extra else ""))
        full = X.copy()
        full[:, ~empty] = np.asarray(completed, dtype=np.float64)
        values, n_clipped = postprocess(full, X, table.integer, clip=args.clip)
        out_df = _fill_frame(table, values, missing, args.float_format)
    write_table(out_df, args.output, out_kind, header=not args.no_header)
    if args.output != STDIO:
        log(quiet, f"wrote {args.output}")
    if args.report is not None:
        report.update(
            columns={
                str(col): {
                    "kind": "integer" if is_int else "float",
                    "missing": int(missing[:, j].sum()),
                    "filled": 0 if empty[j] else int(missing[:, j].sum()),
                    "clipped": int(n_clipped[j]),
                }
                for j, (col, is_int) in enumerate(
                    zip(table.columns, table.integer, strict=True)
                )
            },
            fitted=fitted,
            warnings=caught,
            estimated_fit_seconds=None if estimate is None else round(estimate, 1),
            fit_seconds=None if fit_seconds is None else round(fit_seconds, 3),
            total_seconds=round(time.perf_counter() - started, 3),
        )
        text = (
            json.dumps(_jsonable(report), indent=2) + "\n"
            if report_format == "json"
            else _text_report(report)
        )
        write_text(text, args.report)
    return 0


#: fitted attributes a report shows when the estimator has them.
_FITTED = ("rank_", "n_iter_", "best_iter_", "stop_reason_", "n_neighbors_")


def _fitted_summary(estimator) -> dict:
    out = {}
    for name in _FITTED:
        value = getattr(estimator, name, None)
        if value is not None:
            out[name] = value.item() if hasattr(value, "item") else value
    return out


def _jsonable(value):
    """Parameters and numbers as JSON can hold them (NaN as the string)."""
    import math

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return repr(value)


def _text_report(report: dict) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in report["params"].items())
    fitted = ", ".join(f"{k}={v!r}" for k, v in report["fitted"].items())
    lines = [
        "sklearn-mc impute report",
        f"  input     {report['input']} ({report['rows']} rows)",
        f"  output    {report['output']}",
        f"  method    {report['method']}: {report['estimator']}({params})",
    ]
    if fitted:
        lines.append(f"  fitted    {fitted}")
    times = f"total {report['total_seconds']:.2f} s"
    if report["fit_seconds"] is not None:
        times = f"fit {report['fit_seconds']:.2f} s, " + times
    if report["estimated_fit_seconds"] is not None:
        times += (
            f" (estimated before the fit: up to {report['estimated_fit_seconds']} s)"
        )
    lines.append(f"  time      {times}")
    options = [f"clip={'yes' if report['clip'] else 'no'}"]
    if report["float_format"]:
        options.append(f"float-format={report['float_format']}")
    lines.append(f"  options   {', '.join(options)}")
    if report["copied_columns"]:
        lines.append(f"  copied    {', '.join(report['copied_columns'])}")
    for text in report["warnings"]:
        lines.append(f"  warning   {text}")
    width = max([6, *(len(c) for c in report["columns"])])
    lines.append(f"  {'column':<{width}}  {'kind':<7}  missing  filled  clipped")
    for col, info in report["columns"].items():
        lines.append(
            f"  {col:<{width}}  {info['kind']:<7}  {info['missing']:>7}  "
            f"{info['filled']:>6}  {info['clipped']:>7}"
        )
    return "\n".join(lines) + "\n"


def cmd_methods(args: argparse.Namespace) -> int:
    """``sklearn-mc methods [NAME]``."""
    if args.name is None:
        imputers = _registry.all_imputers()
        width = max(len(name) for name, _ in imputers)
        for name, cls in imputers:
            summary = vars(cls).get("_summary", "")
            print(f"{name:<{width}}  {cls.__name__:<14} {summary}")
        print("\nRun 'sklearn-mc methods NAME' for the parameters of one method.")
        return 0
    cls = resolve_method(args.name)
    print(f"{vars(cls).get('_cli_name', cls.__name__)}: {cls.__name__}")
    print(f"  {vars(cls).get('_summary', '')}")
    print("parameters (--param KEY=VALUE) and their defaults:")
    for key, value in cls().get_params().items():
        print(f"  {key}={value!r}")
    return 0
