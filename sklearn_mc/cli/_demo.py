"""``sklearn-mc demo``: every imputer on built-in examples, one table."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .. import _registry
from ._common import CLIError, one_line
from ._impute import describe, make_estimator, resolve_method

#: Demo settings: modest, so that the whole demo takes a few minutes on two
#: CPU cores; ``--quick`` applies the second dict on top (a smoke test). Only
#: the keys a class accepts are applied. The deep factorisations get a step of
#: 1e-2 (instead of 1e-3) and an iteration cap: with those they reach most of
#: their accuracy in seconds. Keyed by ``--method`` name.
DEMO_PARAMS: dict[str, dict] = {
    "deep-mf": {"learning_rate": 1e-2, "max_iter": 2000},
    "air-net": {"learning_rate": 1e-2, "max_iter": 600},
    "dmf": {"max_iter": 50},
}
DEMO_QUICK_PARAMS: dict[str, dict] = {
    "sgd-mf": {"max_iter": 200},
    "deep-mf": {"max_iter": 500},
    "air-net": {"max_iter": 200},
    "mlp": {"max_iter": 50},
    "dmf": {"max_iter": 20},
}


def demo_datasets(quick: bool, seed: int):
    """``(name, X_true, X_missing)`` triples of the demo."""
    import numpy as np
    from sklearn.datasets import load_diabetes

    from ..datasets import make_low_rank, make_mask, make_ratings

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
    X_obs, ratings = make_ratings(
        n_users, n_items, 5, density=0.15, random_state=seed, return_truth=True
    )
    out.append((f"ratings {n_users}x{n_items} 1-5", ratings, ~np.isnan(X_obs)))

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


def demo_error(X_true, X_pred, X_missing) -> float:
    """RMSE on the hidden entries in units of each column's standard deviation."""
    import numpy as np

    hidden = np.isnan(X_missing)
    std = X_true.std(axis=0)
    std[std == 0] = 1.0
    diff = (X_pred - X_true) / std
    return float(np.sqrt(np.mean(diff[hidden] ** 2)))


def demo_candidates(args: argparse.Namespace) -> list[tuple[str, object]]:
    """``(label, estimator)`` of every method the demo runs, peers last."""
    if args.methods:
        wanted = [resolve_method(m) for m in args.methods.split(",") if m.strip()]
    else:
        wanted = [cls for _, cls in _registry.all_imputers()]
    candidates = []
    for cls in wanted:
        name = vars(cls).get("_cli_name", cls.__name__)
        params = dict(DEMO_PARAMS.get(name, {}))
        if args.quick:
            params.update(DEMO_QUICK_PARAMS.get(name, {}))
        valid = cls().get_params()
        params = {k: v for k, v in params.items() if k in valid}
        est = make_estimator(cls, params, device=args.device, seed=args.seed)
        candidates.append((cls.__name__, est))
    if not args.no_peers:
        candidates += sklearn_peers(args.seed)
    return candidates


def sklearn_peers(seed) -> list[tuple[str, object]]:
    """scikit-learn's own imputers, as the demo runs them."""
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

    return [
        ("sklearn SimpleImputer(mean)", SimpleImputer()),
        ("sklearn KNNImputer", KNNImputer()),
        (
            "sklearn IterativeImputer",
            IterativeImputer(max_iter=10, n_nearest_features=20, random_state=seed),
        ),
    ]


def cmd_demo(args: argparse.Namespace) -> int:
    """``sklearn-mc demo``."""
    import warnings

    import numpy as np
    from sklearn.base import clone

    datasets = demo_datasets(args.quick, args.seed)
    candidates = demo_candidates(args)
    if not candidates:
        raise CLIError("no imputer to run")
    header = ["method"]
    for name, _, _ in datasets:
        header += [f"{name} error", "time s"]
    rows = []
    total = time.perf_counter()
    n_runs, run = len(candidates) * len(datasets), 0
    for label, estimator in candidates:
        row = [label]
        for name, X, X_missing in datasets:
            run += 1
            print(
                f"sklearn-mc: [{run}/{n_runs}] {label} on {name} ...",
                file=sys.stderr,
                flush=True,
            )
            est = clone(estimator)
            start = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    X_pred = np.asarray(est.fit_transform(X_missing), dtype=float)
            except Exception as exc:  # one failing method must not end the demo
                elapsed = time.perf_counter() - start
                print(
                    f"sklearn-mc: {label} failed: {one_line(exc)[:120]}",
                    file=sys.stderr,
                )
                row += ["failed", f"{elapsed:.2f}"]
                continue
            elapsed = time.perf_counter() - start
            row += [f"{demo_error(X, X_pred, X_missing):.3f}", f"{elapsed:.2f}"]
        rows.append(row)
    print(markdown_table(header, rows))
    print()
    print(
        "error: RMSE on the hidden entries in units of each column's standard "
        "deviation (mean imputation ~ 1; lower is better). Hidden: 30 % of "
        "entries (ratings: 15 % observed, popularity-skewed). "
        f"seed={args.seed}, total {time.perf_counter() - total:.1f} s."
    )
    print("settings:")
    for _, estimator in candidates:
        print(f"  {describe(estimator)}")
    return 0


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, n_left: int = 1
) -> str:
    """A markdown table: the first ``n_left`` columns left-aligned, others right."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(cells):
        out = [
            str(cell).ljust(widths[i]) if i < n_left else str(cell).rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "| " + " | ".join(out) + " |"

    sep = (
        "|"
        + "|".join(
            "-" * (w + 1) + ("-" if i < n_left else ":") for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([fmt(header), sep, *(fmt(r) for r in rows)])
