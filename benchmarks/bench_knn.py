"""KNNImputer: sklearn_mc's torch version against scikit-learn's.

Run ``python benchmarks/bench_knn.py`` (``--quick`` for a small run,
``--large`` for the 100,000 x 50 time and memory run). Writes
``benchmarks/results/knn.md`` (``knn_quick.md``, ``knn_large.md``) and prints
the table.

Setting: two 5000 x 200 tables with 20 % of their entries missing uniformly
at random (``--quick``: 1000 x 50): standard normal values, and integer
values 1-5 (a Likert-style table, full of exact distance ties). Both
imputers run ``fit_transform`` with the default settings (5 neighbours,
uniform weights, ``--weights distance`` for 1/d weights) on the CPU with the
same number of threads (``--threads``, default 1: torch threads and the BLAS
threads that scikit-learn's NumPy uses). Each timing is the minimum over
``--repeat`` runs (default 2) of the wall-clock time; the process CPU time
of the same runs is reported too, since the machine may be shared with
other jobs. The table gives both times, their ratios and the largest
absolute difference between the two completions.

``--large``: a 100,000 x 50 rank-5 matrix plus noise (standard deviation
0.1), 20 % missing, ``--threads`` threads (2 for the issue's target);
``fit_transform`` with ``max_donors`` set (the approximate mode) and, with
``--exact``, without; then 20,000 x 50 exact, with the same donor fraction
and with 10,000 donors (what the approximation costs in RMSE). Each in a
fresh process that reports its wall and CPU time and its peak resident
memory above the memory it held with X loaded (``ru_maxrss``), and the RMSE
on the hidden entries.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.impute import KNNImputer as SklearnKNNImputer
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, command, environment, load_average, write_report  # noqa: E402

from sklearn_mc import KNNImputer  # noqa: E402


def problem(
    n_rows: int, n_cols: int, missing: float, kind: str = "gaussian", seed: int = 0
) -> np.ndarray:
    """A table with ``missing`` of its entries set to NaN at random."""
    rng = np.random.RandomState(seed)
    if kind == "gaussian":
        X = rng.standard_normal((n_rows, n_cols))
    else:
        X = rng.randint(1, 6, size=(n_rows, n_cols)).astype(float)
    X[rng.rand(n_rows, n_cols) < missing] = np.nan
    return X


def timed(make, X, repeat):
    """Best wall and CPU time of ``make().fit_transform(X)`` over ``repeat``."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        est = make()
        with Timer() as t:
            out = est.fit_transform(X)
        walls.append(t.wall)
        cpus.append(t.cpu)
    return min(walls), min(cpus), out


def compare(args) -> str:
    n_rows, n_cols = (1000, 50) if args.quick else (5000, 200)
    torch.set_num_threads(args.threads)
    load = load_average()
    lines = [
        f"# KNNImputer: sklearn_mc (torch) vs scikit-learn {sklearn.__version__}",
        "",
        f"{n_rows} x {n_cols}, 20 % missing at random, n_neighbors=5, "
        f"weights={args.weights!r}, fit_transform on the CPU, {args.threads} "
        f"thread(s) each; best of {args.repeat} runs. The machine is shared "
        "(wall times are upper bounds; compare the CPU times too); load "
        f"average at the start {load} (1 / 5 / 15 min).",
        "",
        "| table | scikit-learn wall / CPU (s) | sklearn_mc wall / CPU (s) | "
        "speed-up wall / CPU | max abs diff |",
        "|---|---:|---:|---:|---:|",
    ]
    met = True
    for kind in ("gaussian", "integer"):
        X = problem(n_rows, n_cols, 0.2, kind)
        with threadpool_limits(args.threads):
            ours_wall, ours_cpu, ours = timed(
                # scikit-learn's rule: no shrinkage toward the column mean
                lambda: KNNImputer(
                    weights=args.weights, mean_shrinkage=None, device="cpu"
                ),
                X,
                args.repeat,
            )
            sk_wall, sk_cpu, theirs = timed(
                lambda: SklearnKNNImputer(weights=args.weights), X, args.repeat
            )
        diff = float(np.abs(ours - theirs).max())
        speed_wall, speed_cpu = sk_wall / ours_wall, sk_cpu / ours_cpu
        met &= min(speed_wall, speed_cpu) >= 10 and diff <= 1e-12
        label = "standard normal" if kind == "gaussian" else "integers 1-5"
        lines.append(
            f"| {label} ({int(np.isnan(X).sum())} missing) | {sk_wall:.2f} / "
            f"{sk_cpu:.2f} | {ours_wall:.2f} / {ours_cpu:.2f} | {speed_wall:.1f}x / "
            f"{speed_cpu:.1f}x | {diff:.1e} |"
        )
    verdict = "met" if met else "NOT met"
    if args.quick:
        verdict = "applies to the full 5000 x 200 run"
    lines += [
        "",
        f"Target (speed-up >= 10x in wall and CPU time, max abs diff <= 1e-12 "
        f"on both tables): {verdict}.",
        "",
        f"Command: {command()}. Environment: {environment()}.",
    ]
    return "\n".join(lines)


def _large_child(n_rows: int, max_donors: int | None, threads: int) -> dict:
    """One large fit in this process: times, peak extra memory, RMSE."""
    from sklearn_mc.datasets import make_low_rank

    torch.set_num_threads(threads)
    X_true = make_low_rank(n_rows, 50, 5, noise=0.1, random_state=0)
    rng = np.random.RandomState(1)
    hidden = rng.rand(*X_true.shape) < 0.2
    X = np.where(hidden, np.nan, X_true)
    del rng
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    est = KNNImputer(max_donors=max_donors, random_state=0, device="cpu")
    with threadpool_limits(threads), Timer() as t:
        out = est.fit_transform(X)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rmse = float(np.sqrt(np.mean((out - X_true)[hidden] ** 2)))
    return {
        "n_rows": n_rows,
        "max_donors": max_donors,
        "wall": t.wall,
        "cpu": t.cpu,
        "extra_bytes": peak - base,
        "x_bytes": X.nbytes,
        "rmse": rmse,
        "std": float(X_true[hidden].std()),
        "load": load_average(),
    }


def _run_child(n_rows: int, max_donors: int | None, threads: int) -> dict:
    """:func:`_large_child` in a fresh process (its own peak memory)."""
    params = {"n_rows": n_rows, "max_donors": max_donors, "threads": threads}
    cmd = [sys.executable, __file__, "--child", json.dumps(params)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def large(args) -> str:
    """100,000 x 50: time and memory; 20,000 x 50: the approximation's cost."""
    threads = args.threads
    settings = [(100_000, args.max_donors)] + ([(100_000, None)] if args.exact else [])
    # Where the exact method finishes quickly: the RMSE of subsampled donors
    # against all donors, at the same donor fraction as on 100,000 rows.
    fraction = args.max_donors / 100_000
    settings += [(20_000, None), (20_000, round(20_000 * fraction)), (20_000, 10_000)]
    rows = [_run_child(n, m, threads) for n, m in settings]
    lines = [
        "# KNNImputer on large tables (rank 5 + noise 0.1, 50 columns, 20 % missing)",
        "",
        f"fit_transform on the CPU, {threads} torch thread(s), each setting in a "
        "fresh process; extra memory = peak resident memory (ru_maxrss) minus "
        "the memory held with X loaded (X is n_rows x 50 float64). The machine "
        "is shared: wall times are upper bounds, CPU time is the process's "
        "(all threads); the load average (1 / 5 / 15 min) is taken at the end "
        "of each run. RMSE over the hidden entries; max_donors '-' is the "
        "exact method.",
        "",
        "| rows | max_donors | wall (s) | CPU (s) | peak extra memory | x X | "
        "RMSE hidden (std of hidden) | load average |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        extra = r["extra_bytes"]
        donors = "-" if r["max_donors"] is None else r["max_donors"]
        lines.append(
            f"| {r['n_rows']} | {donors} | {r['wall']:.1f} | {r['cpu']:.1f} | "
            f"{extra / 2**20:.0f} MiB | {extra / r['x_bytes']:.1f} | "
            f"{r['rmse']:.4f} ({r['std']:.3f}) | {r['load']} |"
        )
    lines += ["", f"Command: {command()}. Environment: {environment()}."]
    return "\n".join(lines)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1000 x 50 only")
    parser.add_argument("--large", action="store_true", help="100,000 x 50 run")
    parser.add_argument("--exact", action="store_true", help="--large: exact too")
    parser.add_argument("--max-donors", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--weights", default="uniform", choices=["uniform", "distance"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        params = json.loads(args.child)
        result = _large_child(params["n_rows"], params["max_donors"], params["threads"])
        print(json.dumps(result))
        return ""
    if args.large:
        table, name = large(args), "knn_large"
    else:
        table, name = compare(args), "knn"
    write_report(name, table, quick=args.quick and not args.large)
    return table


if __name__ == "__main__":
    main()
