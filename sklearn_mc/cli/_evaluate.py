"""``sklearn-mc evaluate``: rank the methods on the user's own table.

A fraction of the observed cells is hidden at random (never the last observed
cell of a column), each method completes the table, and the error on the
hidden cells ranks the methods: RMSE in units of each column's standard
deviation over its remaining observed cells, after the same rounding of
integer columns and ``--clip`` that ``impute`` would apply. The column mean is
always in the table as the baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

from .. import _registry
from ._common import CLIError, log, one_line
from ._impute import (
    check_estimator_settings,
    describe,
    make_estimator,
    postprocess,
    read_columns,
    resolve_method,
    warn_if_slow,
)
from ._io import check_input_path
from ._parser import parse_param

BASELINE = "column mean"


def hide_cells(observed, fraction: float, rng):
    """A mask of observed cells to hide, keeping one observed cell per column.

    Parameters
    ----------
    observed : ndarray of bool, shape (n_rows, n_cols)
    fraction : float
        Fraction of the observed cells to hide (at least one is hidden).
    rng : numpy.random.Generator

    Returns
    -------
    hidden : ndarray of bool
    """
    import numpy as np

    rows, cols = np.nonzero(observed)
    keep = np.zeros(rows.size, dtype=bool)
    # One random observed cell of each column stays visible.
    order = rng.permutation(rows.size)
    _, first = np.unique(cols[order], return_index=True)
    keep[order[first]] = True
    candidates = np.flatnonzero(~keep)
    n_hide = min(max(int(round(fraction * rows.size)), 1), candidates.size)
    if n_hide == 0:
        raise CLIError("too few observed cells to hide any: every column has one")
    chosen = rng.choice(candidates, size=n_hide, replace=False)
    hidden = np.zeros_like(observed)
    hidden[rows[chosen], cols[chosen]] = True
    return hidden


def normalised_rmse(X_true, X_pred, hidden, X_train) -> float:
    """RMSE on ``hidden`` in units of each column's observed std."""
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        std = np.nanstd(X_train, axis=0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    diff = (X_pred - X_true) / std
    return float(np.sqrt(np.mean(diff[hidden] ** 2)))


def _candidates(args) -> list[tuple[str, object]]:
    if args.methods:
        names = [m for m in (p.strip() for p in args.methods.split(",")) if m]
        classes = [resolve_method(m) for m in names]
    else:
        classes = [cls for _, cls in _registry.all_imputers()]
    params = dict(parse_param(p) for p in args.param)
    out = []
    verbose = 0 if args.quiet else max(args.verbose - 1, 0)
    for cls in classes:
        name = vars(cls).get("_cli_name", cls.__name__)
        valid = cls().get_params()
        settings = _registry.fast_params(cls) if args.fast else {}
        settings.update({k: v for k, v in params.items() if k in valid})
        est = make_estimator(
            cls, settings, device=args.device, seed=args.seed, verbose=verbose
        )
        check_estimator_settings(est)
        out.append((name, est))
    unused = set(params) - {k for _, e in out for k in e.get_params()}
    if unused:
        names = ", ".join(map(repr, sorted(unused)))
        raise CLIError(f"no method compared has the parameter {names}")
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``sklearn-mc evaluate``."""
    import numpy as np
    from sklearn.base import clone

    quiet = args.quiet
    check_input_path(args.input)
    if not 0.0 < args.fraction < 1.0:
        raise CLIError(f"--fraction must be in (0, 1), got {args.fraction}")
    if args.repeats < 1:
        raise CLIError(f"--repeats must be at least 1, got {args.repeats}")
    candidates = _candidates(args)
    table = read_columns(args)
    X = table.matrix()
    keep = ~np.isnan(X).all(axis=0)
    X = X[:, keep]
    integer = np.asarray(table.integer, dtype=bool)[keep]
    if X.shape[1] == 0:
        raise CLIError(f"{args.input}: no observed value in any numeric column")
    rng = np.random.default_rng(args.seed)
    masks = [hide_cells(~np.isnan(X), args.fraction, rng) for _ in range(args.repeats)]
    n_hidden = int(masks[0].sum())
    log(
        quiet,
        f"read {args.input}: {X.shape[0]} rows, {X.shape[1]} columns; hiding "
        f"{n_hidden} of {int((~np.isnan(X)).sum())} observed cells "
        f"({args.fraction:.0%}), {args.repeats} time(s)",
    )
    results = []
    for name, estimator in [(BASELINE, None), *candidates]:
        errors, seconds, failure = [], 0.0, None
        if estimator is not None:
            warn_if_slow(estimator, *X.shape, int((~np.isnan(X)).sum()))
            log(quiet, f"{name}: {describe(estimator)}")
        for hidden in masks:
            X_train = X.copy()
            X_train[hidden] = np.nan
            start = time.perf_counter()
            try:
                if estimator is None:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        mean = np.nanmean(X_train, axis=0)
                    completed = np.where(np.isnan(X_train), mean, X_train)
                else:
                    completed = clone(estimator).fit_transform(X_train)
            except Exception as exc:  # one failing method must not end the ranking
                failure = one_line(exc)[:160]
                seconds += time.perf_counter() - start
                break
            seconds += time.perf_counter() - start
            pred, _ = postprocess(completed, X_train, integer, clip=args.clip)
            errors.append(normalised_rmse(X, pred, hidden, X_train))
        if failure is not None:
            log(quiet, f"{name} failed: {failure}")
        results.append(
            {
                "method": name,
                "estimator": "" if estimator is None else describe(estimator),
                "error": float(np.mean(errors)) if failure is None else None,
                "seconds": round(seconds / len(masks), 3),
                "failed": failure,
            }
        )
    results.sort(key=lambda r: (r["error"] is None, r["error"] or 0.0))
    if args.json:
        payload = {
            "input": args.input,
            "fraction": args.fraction,
            "repeats": args.repeats,
            "hidden_cells": n_hidden,
            "seed": args.seed,
            "fast": bool(args.fast),
            "ranking": results,
        }
        print(json.dumps(payload, indent=2))
        return 0
    from ._demo import markdown_table

    rows = [
        [
            str(k + 1) if r["error"] is not None else "-",
            r["method"],
            "failed" if r["error"] is None else f"{r['error']:.3f}",
            f"{r['seconds']:.2f}",
        ]
        for k, r in enumerate(results)
    ]
    print(markdown_table(["rank", "method", "error", "time s"], rows, n_left=2))
    print()
    print(
        f"error: RMSE on {n_hidden} hidden observed cells ({args.fraction:.0%}, "
        f"{args.repeats} repeat(s), seed={args.seed}) in units of each column's "
        f"standard deviation; '{BASELINE}' ~ 1, lower is better."
        + (" Fast settings (--fast)." if args.fast else "")
    )
    print("settings:")
    for r in results:
        if r["estimator"]:
            print(f"  {r['method']}: {r['estimator']}")
    sys.stdout.flush()
    return 0
