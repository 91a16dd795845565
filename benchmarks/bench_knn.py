"""KNNImputer: sklearn_mc's torch version against scikit-learn's.

Run ``python benchmarks/bench_knn.py`` (``--quick`` for a small run).
Writes ``benchmarks/results/knn.md`` and prints the table.

Setting: a 5000 x 200 standard normal matrix with 20 % of its entries
missing uniformly at random (``--quick``: 1000 x 50). Both imputers run
``fit_transform`` with the default settings (5 neighbours, uniform weights,
``--weights distance`` for 1/d weights) on the CPU with the same number of
threads (``--threads``, default 1: torch threads and the BLAS threads that
scikit-learn's NumPy uses). Each timing is the minimum over ``--repeat``
runs (default 3) of the wall-clock time; the process CPU time of the same
runs is reported too, since the machine may be shared with other jobs.
The table gives both times, their ratio and the largest absolute difference
between the two completions.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.impute import KNNImputer as SklearnKNNImputer
from threadpoolctl import threadpool_limits

from sklearn_mc import KNNImputer

RESULTS = Path(__file__).resolve().parent / "results"


def problem(n_rows: int, n_cols: int, missing: float, seed: int = 0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_rows, n_cols))
    X[rng.rand(n_rows, n_cols) < missing] = np.nan
    return X


def timed(make, X, repeat):
    """Best wall and CPU time of ``make().fit_transform(X)`` over ``repeat``."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        est = make()
        cpu, wall = time.process_time(), time.perf_counter()
        out = est.fit_transform(X)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), out


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1000 x 50 only")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--weights", default="uniform", choices=["uniform", "distance"])
    args = parser.parse_args(argv)

    try:
        import fancyimpute  # noqa: F401

        print("fancyimpute imported but not benchmarked here (sklearn's is the peer)")
    except ImportError as exc:
        print(f"fancyimpute skipped: {exc}")

    n_rows, n_cols = (1000, 50) if args.quick else (5000, 200)
    X = problem(n_rows, n_cols, 0.2)
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        ours_wall, ours_cpu, ours = timed(
            lambda: KNNImputer(weights=args.weights, device="cpu"), X, args.repeat
        )
        sk_wall, sk_cpu, theirs = timed(
            lambda: SklearnKNNImputer(weights=args.weights), X, args.repeat
        )
    diff = float(np.abs(ours - theirs).max())
    speedup = sk_wall / ours_wall
    verdict = "met" if speedup >= 10 and diff <= 1e-6 else "NOT met"
    if args.quick:
        verdict = "applies to the full 5000 x 200 run"

    lines = [
        f"# KNNImputer: sklearn_mc (torch) vs scikit-learn {sklearn.__version__}",
        "",
        f"{n_rows} x {n_cols} standard normal, 20 % missing at random "
        f"({int(np.isnan(X).sum())} entries), n_neighbors=5, "
        f"weights={args.weights!r}, fit_transform on the CPU, {args.threads} "
        f"thread(s) each; best of {args.repeat} runs. Machine: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        "(shared with other jobs: compare the CPU times too).",
        "",
        "| imputer | wall time (s) | CPU time (s) | max abs diff vs scikit-learn |",
        "|---|---:|---:|---:|",
        f"| scikit-learn KNNImputer | {sk_wall:.2f} | {sk_cpu:.2f} | 0 |",
        f"| sklearn_mc KNNImputer | {ours_wall:.2f} | {ours_cpu:.2f} | {diff:.1e} |",
        "",
        f"Speed-up (scikit-learn / sklearn_mc): wall {speedup:.1f}x, "
        f"CPU {sk_cpu / ours_cpu:.1f}x. Target (wall >= 10x, max abs diff "
        f"<= 1e-6): {verdict}.",
        "",
    ]
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    name = "knn_quick.md" if args.quick else "knn.md"
    (RESULTS / name).write_text(table)
    return table


if __name__ == "__main__":
    main()
