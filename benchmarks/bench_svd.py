"""SVDImputer beside scikit-learn's imputers (and fancyimpute when it installs).

Run ``python benchmarks/bench_svd.py`` (``--quick`` for a small run). Prints
markdown tables and writes them to ``benchmarks/results/svd.md``:

1. 1000 x 1000 rank 10, 20 % observed: relative error on the missing entries
   and fit time, SVDImputer (ALS with the true rank, automatic rank, the
   classical SVDimpute loop, SoftImpute shrinkage) beside scikit-learn's
   SimpleImputer / KNNImputer / IterativeImputer.
2. Seed 004's case, 2000 x 2000 rank 8: error and time against the sampling
   rate, and the lowest rate reaching relative error <= 1e-4 (information
   limit: rank * (m + n - rank) / (m * n) = 0.80 %).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    environment,
    fancyimpute_or_reason,
    markdown_table,
    timed,
    write_report,
)

from sklearn_mc import SVDImputer  # noqa: E402
from sklearn_mc.datasets import make_low_rank  # noqa: E402
from sklearn_mc.metrics import relative_error  # noqa: E402


def problem(n, m, rank, rate, seed=0):
    X = make_low_rank(n, m, rank, random_state=seed)
    observed = np.random.RandomState(seed + 1).random_sample(X.shape) < rate
    return X, np.where(observed, X, np.nan), ~observed


def run(name, imputer, X, X_missing, hidden):
    out, seconds = timed(imputer.fit_transform, X_missing)
    return {
        "method": name,
        "relative error": relative_error(X, out, hidden),
        "fit time (s)": seconds,
    }


def table_1000(quick: bool) -> str:
    n = 300 if quick else 1000
    X, X_missing, hidden = problem(n, n, 10, 0.2)
    rows = [
        run(
            "sklearn_mc SVDImputer(rank=10)",
            SVDImputer(rank=10, random_state=0),
            X,
            X_missing,
            hidden,
        ),
        run(
            "sklearn_mc SVDImputer(rank='auto')",
            SVDImputer(random_state=0),
            X,
            X_missing,
            hidden,
        ),
        run(
            "sklearn_mc SVDImputer(rank=10, solver='svd', max_iter=100)",
            SVDImputer(rank=10, solver="svd", max_iter=100, random_state=0),
            X,
            X_missing,
            hidden,
        ),
        run(
            "sklearn_mc SVDImputer(rank=10, shrinkage=5) (SoftImpute)",
            SVDImputer(rank=10, shrinkage=5.0, random_state=0),
            X,
            X_missing,
            hidden,
        ),
        run("sklearn SimpleImputer(mean)", SimpleImputer(), X, X_missing, hidden),
        run("sklearn KNNImputer(5)", KNNImputer(), X, X_missing, hidden),
    ]
    # The full IterativeImputer regresses every column on all others: hours
    # at this width, so it is restricted to 20 nearest features.
    rows.append(
        run(
            "sklearn IterativeImputer(n_nearest_features=20, max_iter=3)",
            IterativeImputer(n_nearest_features=20, max_iter=3, random_state=0),
            X,
            X_missing,
            hidden,
        )
    )
    fancy, reason = fancyimpute_or_reason()
    if fancy is not None:
        rows.append(
            run(
                "fancyimpute SoftImpute",
                fancy.SoftImpute(verbose=False),
                X,
                X_missing,
                hidden,
            )
        )
        rows.append(
            run(
                "fancyimpute IterativeSVD(rank=10)",
                fancy.IterativeSVD(rank=10, verbose=False),
                X,
                X_missing,
                hidden,
            )
        )
    text = markdown_table(rows, ["method", "relative error", "fit time (s)"])
    return f"### {n} x {n}, rank 10, 20 % observed\n\n{text}\n\n{reason}\n"


def table_seed_004(quick: bool) -> str:
    n = 500 if quick else 2000
    rates = [0.06, 0.08] if quick else [0.008, 0.009, 0.010, 0.011, 0.0125, 0.015, 0.02]
    rows, lowest = [], None
    X = make_low_rank(n, n, 8, random_state=0)
    for rate in rates:
        observed = np.random.RandomState(1).random_sample(X.shape) < rate
        est = SVDImputer(rank=8, max_iter=3000, tol=1e-9, random_state=0)
        out, seconds = timed(est.fit_transform, np.where(observed, X, np.nan))
        err = relative_error(X, out, ~observed)
        if err <= 1e-4 and lowest is None:
            lowest = rate
        rows.append(
            {
                "observed %": 100 * rate,
                "relative error": err,
                "<= 1e-4": "yes" if err <= 1e-4 else "no",
                "sweeps": est.n_iter_,
                "fit time (s)": seconds,
            }
        )
    limit = 8 * (2 * n - 8) / n**2
    text = markdown_table(
        rows, ["observed %", "relative error", "<= 1e-4", "sweeps", "fit time (s)"]
    )
    low = "none" if lowest is None else f"{100 * lowest:.2f} %"
    return (
        f"### Seed 004: {n} x {n}, rank 8, SVDImputer(rank=8, tol=1e-9)\n\n{text}\n\n"
        f"Lowest sampling rate reaching relative error <= 1e-4: {low} "
        f"(information limit {100 * limit:.2f} %).\n"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small matrices")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    parts = [
        "## SVDImputer benchmark",
        f"Machine: {environment()}.",
        table_1000(args.quick),
        table_seed_004(args.quick),
    ]
    write_report("svd_quick" if args.quick else "svd", "\n\n".join(parts))


if __name__ == "__main__":
    main()
