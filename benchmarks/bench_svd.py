"""SVDImputer beside scikit-learn's imputers (and fancyimpute when it installs).

Run ``python benchmarks/bench_svd.py`` (``--quick`` for a small run). Prints
markdown tables and writes them to ``benchmarks/results/svd.md``:

1. 1000 x 1000 rank 10, 20 % observed: relative error on the missing entries
   and fit time, SVDImputer (ALS with the true rank, automatic rank, the
   classical SVDimpute loop, SoftImpute shrinkage) beside scikit-learn's
   SimpleImputer / KNNImputer / IterativeImputer.
2. The matrix-completion lecture's case, 2000 x 2000 rank 8: error and
   time against the sampling rate, and the lowest rate reaching relative
   error <= 1e-4 (information limit: rank * (m + n - rank) / (m * n) = 0.80 %).
3. ``--readme``: the README's example (500 x 200 rank 5, 70 % missing) with
   ``rank="auto"``: chosen rank, error, wall and CPU time; ``--tiny``: CPU
   time of rank-1 fits on 4 x 4 matrices (the fixed cost of the ridge
   selection).
4. ``--memory``: peak extra memory (``ru_maxrss`` of a fresh subprocess) of
   ``fit_transform`` on 100,000 x 50 (rank 5 + noise, 20 % missing) against
   the size of X; ``--ratings``: an ML-1M-like sparse rating matrix
   (6,040 x 3,706, 10^6 ratings) fitted at defaults.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    Timer,
    command,
    environment,
    fancyimpute_or_reason,
    load_average,
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


def table_lecture(quick: bool) -> str:
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
        f"### Matrix-completion lecture: {n} x {n}, rank 8, "
        f"SVDImputer(rank=8, tol=1e-9)\n\n{text}\n\n"
        f"Lowest sampling rate reaching relative error <= 1e-4: {low} "
        f"(information limit {100 * limit:.2f} %).\n"
    )


_MEMORY_CHILD = """
import json, resource, sys, time, warnings
import numpy as np, torch
torch.set_num_threads({threads})
from sklearn_mc import SVDImputer
rng = np.random.RandomState(0)
X = rng.randn(100_000, 5) @ rng.randn(5, 50) + 0.1 * rng.randn(100_000, 50)
X[rng.rand(*X.shape) < 0.2] = np.nan
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t, cpu = time.time(), time.process_time()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    est = SVDImputer(random_state=0)
    out = est.fit_transform(X)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"extra_mb": (after - before) / 1024, "x_mb": X.nbytes / 2**20,
                  "seconds": time.time() - t, "cpu": time.process_time() - cpu,
                  "rank": int(est.rank_)}}))
"""


def table_memory(threads: int) -> str:
    code = _MEMORY_CHILD.format(threads=threads)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    r = json.loads(done.stdout.strip().splitlines()[-1])
    row = {
        "X (MB)": r["x_mb"],
        "peak extra (MB)": r["extra_mb"],
        "extra / X": r["extra_mb"] / r["x_mb"],
        "rank_": r["rank"],
        "fit_transform (s)": r["seconds"],
        "CPU (s)": r["cpu"],
    }
    text = markdown_table([row], list(row))
    return (
        "### Memory: fit_transform on 100,000 x 50 (rank 5 + noise, 20 % missing)"
        f"\n\n{text}\n\nPeak resident memory of a fresh subprocess "
        "(`ru_maxrss`) during `SVDImputer().fit_transform(X)` minus before it; "
        f"{_load()}.\n"
    )


def _load() -> str:
    return f"load average {load_average()} (1 / 5 / 15 min) when the table was made"


def table_tiny() -> str:
    """CPU time of fits on 4 x 4 matrices (the ridge selection's fixed cost)."""
    rows = []
    for noise in (0.0, 0.3):
        cpu, n_iter = [], []
        for seed in range(8):
            rng = np.random.RandomState(seed)
            X = rng.randn(4, 1) @ rng.randn(1, 4) + noise * rng.randn(4, 4)
            X[rng.rand(4, 4) < 0.25] = np.nan
            with warnings.catch_warnings(), Timer() as t:
                warnings.simplefilter("ignore")
                est = SVDImputer(rank=1, random_state=0).fit(X)
            cpu.append(t.cpu)
            n_iter.append(est.n_iter_)
        rows.append(
            {
                "data": "rank 1" + (f" + {noise} noise" if noise else " (exact)"),
                "fits": len(cpu),
                "CPU per fit (s)": float(np.mean(cpu)),
                "max CPU (s)": float(np.max(cpu)),
                "final-fit sweeps (mean)": float(np.mean(n_iter)),
            }
        )
    text = markdown_table(rows, list(rows[0]))
    return (
        "### Tiny matrices: SVDImputer(rank=1).fit on 4 x 4, 25 % missing\n\n"
        f"{text}\n\nEight seeds each; {_load()}.\n"
    )


def table_readme() -> str:
    from sklearn_mc.datasets import make_mask

    X = make_low_rank(500, 200, rank=5, random_state=0)
    hidden = make_mask(X.shape, "random", missing_rate=0.7, random_state=0)
    X_missing = np.where(hidden, np.nan, X)
    with Timer() as t:
        est = SVDImputer(random_state=0)
        out = est.fit_transform(X_missing)
    row = {
        "rank_": est.rank_,
        "max abs error": float(np.abs(out - X)[hidden].max()),
        "wall (s)": t.wall,
        "CPU (s)": t.cpu,
    }
    text = markdown_table([row], list(row))
    return (
        f"### README example, rank='auto' (500 x 200, rank 5, 70 % missing)\n\n{text}\n"
    )


def table_ratings() -> str:
    import scipy.sparse as sp

    rng = np.random.RandomState(0)
    n_users, n_items, nnz = 6040, 3706, 1_000_000
    # A rank-8 noisy signal on 1..5 at ~10^6 uniformly drawn pairs (built
    # pair by pair: no dense 6040 x 3706 matrix).
    U, V = rng.randn(n_users, 8), rng.randn(n_items, 8)
    keys = np.unique(rng.randint(0, n_users * n_items, int(nnz * 1.05)))[:nnz]
    r, c = keys // n_items, keys % n_items
    signal = (U[r] * V[c]).sum(1) / np.sqrt(8)
    values = np.clip(np.round(3 + 0.9 * (signal + 0.5 * rng.randn(r.size))), 1, 5)
    test = rng.rand(r.size) < 0.1
    S = sp.csr_array((values[~test], (r[~test], c[~test])), shape=(n_users, n_items))
    with Timer() as t:
        est = SVDImputer(random_state=0).fit(S)
    pred = est.predict_entries(r[test], c[test])
    rmse = float(np.sqrt(((pred - values[test]) ** 2).mean()))
    col_mean = np.bincount(c[~test], values[~test], n_items) / np.maximum(
        np.bincount(c[~test], minlength=n_items), 1
    )
    base = float(np.sqrt(((col_mean[c[test]] - values[test]) ** 2).mean()))
    row = {
        "rank_": est.rank_,
        "held-out RMSE": rmse,
        "item-mean RMSE": base,
        "fit wall (s)": t.wall,
        "fit CPU (s)": t.cpu,
    }
    text = markdown_table([row], list(row))
    return (
        "### ML-1M-like sparse ratings (6,040 x 3,706, 10^6 ratings, rank 8 + "
        f"noise), SVDImputer() at defaults\n\n{text}\n"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small matrices")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--readme", action="store_true", help="only the README case")
    parser.add_argument("--memory", action="store_true", help="only the memory part")
    parser.add_argument("--ratings", action="store_true", help="only ML-1M-like")
    parser.add_argument("--tiny", action="store_true", help="only the 4 x 4 fits")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    parts = [
        "## SVDImputer benchmark",
        f"Command: {command()}. Machine: {environment()}.",
    ]
    only = [
        name for name in ("readme", "tiny", "memory", "ratings") if getattr(args, name)
    ]
    if only:
        if args.readme:
            parts.append(table_readme())
        if args.tiny:
            parts.append(table_tiny())
        if args.memory:
            parts.append(table_memory(args.threads))
        if args.ratings:
            parts.append(table_ratings())
        write_report("svd_" + "_".join(only), "\n\n".join(parts))
        return
    parts += [
        table_readme(),
        table_tiny(),
        table_1000(args.quick),
        table_lecture(args.quick),
        table_memory(args.threads),
    ]
    write_report("svd", "\n\n".join(parts), quick=args.quick)


if __name__ == "__main__":
    main()
