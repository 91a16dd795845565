"""DeepMFImputer: Arora et al. (2019)'s matrix-completion experiment.

Run ``python benchmarks/bench_deep_mf.py`` (``--quick`` for a small run;
``--memory N_ROWS`` for the memory table, ``--ratings`` for the defaults on an
ML-100K-like rating matrix, ``benchmarks/results/deep_ratings_100k.md``).
Writes ``benchmarks/results/deep_mf.md`` and ``benchmarks/results/deep_mf.png``
(error vs number of observed entries; ``deep_mf_quick.*`` for ``--quick``)
and prints the table.

Setting, as in the paper and its public code: a 100 x 100 ground truth of
rank 5, ``U Vᵀ`` with ``U, V ~ N(0, 1)`` scaled so that entries have RMS 1;
a number of entries observed uniformly without replacement. Methods:

* DeepMFImputer at depth 2, 3 and 4 with the paper's optimiser: full-batch
  gradient descent with one adaptive step size (``optimizer="grouprmsprop"``),
  initial product entries of standard deviation 1e-4 (the paper's end-to-end
  Frobenius norm 1e-3·√n), no early stopping, run for a fixed number of
  iterations (the paper runs until the training MSE is 1e-6; the final
  training MSE is reported);
* nuclear-norm minimisation: ``SVDImputer(shrinkage=λ)`` (SoftImpute) at full
  rank for a few small λ, best λ reported (an oracle choice, which favours
  it);
* the row/column-mean baseline.

Error = ``‖X̂ − X*‖_F / ‖X*‖_F`` on the unobserved entries. Timings were taken
on a shared machine (2 cores, several jobs at once).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    Timer,
    command,
    environment,
    load_average,
    markdown_table,
    report_path,
    write_report,
)

from sklearn_mc import DeepMFImputer  # noqa: E402
from sklearn_mc.datasets import make_low_rank  # noqa: E402
from sklearn_mc.metrics import relative_error  # noqa: E402


def problem(n_obs: int, seed: int = 0):
    X = make_low_rank(100, 100, 5, random_state=seed)
    X /= np.sqrt(np.mean(X**2))
    rng = np.random.RandomState(seed + 1)
    observed = np.zeros(X.size, dtype=bool)
    observed[rng.choice(X.size, n_obs, replace=False)] = True
    observed = observed.reshape(X.shape)
    return X, np.where(observed, X, np.nan)


def deep_mf(X_missing, depth, max_iter):
    est = DeepMFImputer(
        depth=depth,
        optimizer="grouprmsprop",
        learning_rate=3e-2,
        init_scale=1e-4,
        max_iter=max_iter,
        early_stopping=False,
        tol=0.0,
        n_iter_no_change=max_iter,
        device="cpu",
        random_state=0,
    )
    out = est.fit_transform(X_missing)
    return out, est.loss_curve_[-1], est.n_iter_


def nuclear_norm(X, X_missing, hidden, shrinkages):
    try:
        from sklearn_mc import SVDImputer
    except ImportError:  # pragma: no cover - the lead's SVDImputer is missing
        return soft_impute(X, X_missing, hidden, shrinkages), "own SoftImpute"
    best = None
    for lam in shrinkages:
        est = SVDImputer(
            rank=100,
            shrinkage=lam,
            solver="svd",
            center=False,
            scaling="none",
            max_iter=3000,
            tol=1e-9,
            device="cpu",
            random_state=0,
        )
        err = relative_error(X, est.fit_transform(X_missing), hidden)
        if best is None or err < best[0]:
            best = (err, lam)
    return best, "SVDImputer"


def soft_impute(X, X_missing, hidden, shrinkages, n_iter=3000):
    """Fallback: plain SoftImpute (singular values soft-thresholded by λ)."""
    observed = ~hidden
    best = None
    for lam in shrinkages:
        Z = np.zeros_like(X)
        for _ in range(n_iter):
            U, s, Vt = np.linalg.svd(np.where(observed, X_missing, Z))
            Z = (U * np.maximum(s - lam, 0)) @ Vt
        err = relative_error(X, Z, hidden)
        if best is None or err < best[0]:
            best = (err, lam)
    return best


MEMORY_CASES = {
    "DeepMFImputer": "DeepMFImputer(max_iter=20, random_state=0, device='cpu')",
    "AIRNetImputer": "AIRNetImputer(max_iter=20, random_state=0, device='cpu')",
    "DMFImputer": "DMFImputer(max_iter=1, random_state=0, device='cpu')",
    "DMFImputer (full batch)": (
        "DMFImputer(max_iter=1, batch_size=None, random_state=0, device='cpu')"
    ),
}

_MEMORY_CHILD = """
import resource, sys, time, warnings
import numpy as np, torch
from sklearn_mc import AIRNetImputer, DeepMFImputer, DMFImputer
torch.set_num_threads(1)
warnings.simplefilter("ignore")
n_rows = int(sys.argv[1])
rng = np.random.RandomState(0)
X = rng.randn(n_rows, 5) @ rng.randn(5, 50) + 0.1 * rng.randn(n_rows, 50)
X[rng.rand(*X.shape) < 0.2] = np.nan
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
est = eval(sys.argv[2])
t0, c0 = time.perf_counter(), time.process_time()
out = est.fit_transform(X)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(X.nbytes, base * 1024, peak * 1024, time.perf_counter() - t0,
      time.process_time() - c0)
"""


RATING_CASES = {
    "item mean": None,
    "SGDMFImputer": "SGDMFImputer(random_state=0, device='cpu')",
    "DeepMFImputer": "DeepMFImputer(random_state=0, device='cpu')",
    "AIRNetImputer": "AIRNetImputer(random_state=0, device='cpu')",
}


def ratings(names, n_threads: int = 2) -> str:
    """Defaults on an ML-100K-like matrix: fit time, CPU time, held-out RMSE.

    ``make_ratings(943, 1682, density=0.063, random_state=0)`` (about 100,000
    ratings, 1..5, popularity-skewed); 10 % of the observed entries (seed 1)
    are hidden and predicted. Torch uses ``n_threads`` threads; CPU time is
    the process's, so ``CPU / n_threads`` approximates the wall time of an
    unshared ``n_threads``-core machine.
    """
    import os
    import warnings

    import sklearn_mc
    from sklearn_mc.datasets import make_ratings

    sys_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    X = make_ratings(943, 1682, density=0.063, random_state=0)
    observed = np.flatnonzero(~np.isnan(X))
    hidden = np.random.RandomState(1).choice(
        observed, observed.size // 10, replace=False
    )
    X_train = X.copy()
    X_train.flat[hidden] = np.nan
    rows = []
    for name in names:
        call = RATING_CASES[name]
        load = os.getloadavg()[0]
        with Timer() as t:
            if call is None:
                means = np.nanmean(X_train, axis=0)
                out = np.where(np.isnan(X_train), means, X_train)
                n_iter = "–"
            else:
                names_ = {n: getattr(sklearn_mc, n) for n in sklearn_mc.__all__}
                est = eval(call, names_)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = est.fit_transform(X_train)
                n_iter = f"{est.n_iter_} (best {getattr(est, 'best_iter_', '–')})"
        err = float(np.sqrt(np.mean((out.flat[hidden] - X.flat[hidden]) ** 2)))
        rows.append(
            [
                name,
                f"{err:.4f}",
                f"{t.wall:.1f}",
                f"{t.cpu:.1f}",
                f"{t.cpu / n_threads:.1f}",
                n_iter,
                f"{load:.1f}",
            ]
        )
        print(rows[-1], flush=True)
    stamp = environment()  # while the fits' thread count is still set
    torch.set_num_threads(sys_threads)
    return "\n".join(
        [
            "## Defaults on an ML-100K-like rating matrix, 943 x 1682",
            "",
            f"`make_ratings(943, 1682, density=0.063, random_state=0)`, "
            f"{observed.size} ratings; RMSE on 10 % of them, hidden. Torch "
            f"{n_threads} threads; CPU = process CPU time (CPU / {n_threads} "
            "approximates an unshared 2-core wall time). Load = 1-min load "
            f"average at the start of each fit. Command: {command()}. "
            f"Environment: {stamp}.",
            "",
            markdown_table(
                rows,
                [
                    "method",
                    "held-out RMSE",
                    "wall s",
                    "CPU s",
                    "CPU / 2",
                    "iterations",
                    "load",
                ],
            ),
            "",
        ]
    )


def memory(n_rows: int, names) -> str:
    """Peak extra RSS of ``fit_transform`` on ``n_rows`` x 50, one process each.

    Extra = ``ru_maxrss`` after the fit minus ``ru_maxrss`` with ``X`` built
    (so the import and ``X`` itself are not counted).
    """
    import subprocess

    lines = [
        f"## Peak extra memory of fit_transform, {n_rows} x 50, 20 % missing",
        "",
        "One fresh process per estimator; ru_maxrss before and after the fit. "
        "Iterations are capped (max_iter=20): every buffer of the training "
        "loop exists from the first iteration on, so the peak is reached in "
        f"the first iterations. Load average {load_average()} (1 / 5 / 15 min) "
        "at the start: wall times are upper bounds, CPU times are fairer. "
        f"Command: {command()}. Environment: {environment()}.",
        "",
    ]
    columns = ["estimator", "call", "extra MB", "extra / X", "wall s", "CPU s"]
    rows = []
    for name in names:
        call = MEMORY_CASES[name]
        proc = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, str(n_rows), call],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode:
            rows.append(
                [name, f"`{call}`", f"failed: {proc.stderr[-200:]}", "", "", ""]
            )
            print(rows[-1], flush=True)
            continue
        nbytes, base, peak, wall, cpu = map(float, proc.stdout.split()[-5:])
        extra = peak - base
        rows.append(
            [
                name,
                f"`{call}`",
                f"{extra / 2**20:.0f}",
                f"{extra / nbytes:.1f}x",
                f"{wall:.0f}",
                f"{cpu:.0f}",
            ]
        )
        print(rows[-1], flush=True)
    return "\n".join([*lines, markdown_table(rows, columns)]) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run")
    parser.add_argument(
        "--memory",
        type=int,
        default=None,
        metavar="N_ROWS",
        help="instead: peak extra memory of DeepMF, AIR-Net and DMF on N_ROWS x 50",
    )
    parser.add_argument(
        "--memory-methods", nargs="*", default=list(MEMORY_CASES), metavar="NAME"
    )
    parser.add_argument(
        "--ratings",
        nargs="*",
        default=None,
        metavar="NAME",
        help="instead: defaults on an ML-100K-like matrix (names of RATING_CASES; "
        "none given: all)",
    )
    args = parser.parse_args(argv)
    if args.ratings is not None:
        write_report("deep_ratings_100k", ratings(args.ratings or list(RATING_CASES)))
        return
    torch.set_num_threads(1)
    if args.memory:
        write_report(
            f"deep_memory_{args.memory}", memory(args.memory, args.memory_methods)
        )
        return
    if args.quick:
        sizes, depths, max_iter, shrinkages = [2000, 5000], [2, 3], 4000, [0.3, 1.0]
    else:
        sizes = [1000, 2000, 3000, 4000, 5000]
        depths, max_iter, shrinkages = [2, 3, 4], 10000, [0.1, 0.3, 1.0, 3.0]
    rows, curves = [], {d: [] for d in depths}
    curves["nuclear"], curves["mean"] = [], []
    for n_obs in sizes:
        X, X_missing = problem(n_obs)
        hidden = np.isnan(X_missing)
        row = {"observed": n_obs}
        for depth in depths:
            with Timer() as t:
                out, train_mse, n_iter = deep_mf(X_missing, depth, max_iter)
            err = relative_error(X, out, hidden)
            row[f"depth {depth}"] = (
                f"{err:.3g} (train MSE {train_mse:.0e}, {t.wall:.0f} s, "
                f"CPU {t.cpu:.0f} s)"
            )
            curves[depth].append(err)
            print(f"n_obs={n_obs} depth={depth}: {err:.4g}", flush=True)
        with Timer() as t:
            (err, lam), which = nuclear_norm(X, X_missing, hidden, shrinkages)
        row["nuclear norm"] = f"{err:.3g} (λ={lam:g}, {t.wall:.0f} s)"
        curves["nuclear"].append(err)
        means = np.nan_to_num(np.nanmean(X_missing, axis=0))
        mean_fill = np.where(hidden, means, X_missing)
        curves["mean"].append(relative_error(X, mean_fill, hidden))
        row["column means"] = f"{curves['mean'][-1]:.3g}"
        rows.append(row)
        print(f"n_obs={n_obs} nuclear norm ({which}): {err:.4g}", flush=True)
    text = "\n".join(
        [
            "# DeepMFImputer: Arora et al. (2019), 100 x 100 rank 5",
            "",
            "Relative error ‖X̂ − X*‖_F / ‖X*‖_F on the unobserved entries; "
            f"DeepMF: grouprmsprop lr 3e-2, init 1e-4, {max_iter} iterations; "
            f"nuclear norm: {which} (SoftImpute), best λ of {shrinkages}. "
            "Times are wall-clock seconds (upper bounds on a shared machine) "
            "and the process's CPU seconds." + (" Quick run." if args.quick else ""),
            "",
            f"Command: {command()}. Environment: {environment()}.",
            "",
            markdown_table(rows, list(rows[0])),
            "",
        ]
    )
    # A quick run must not overwrite the full run's table and figure.
    write_report("deep_mf", text, quick=args.quick)
    plot(sizes, curves, report_path("deep_mf", quick=args.quick, suffix=".png"))


def plot(sizes, curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, errs in curves.items():
        label = f"depth {key}" if isinstance(key, int) else key
        style = "o-" if isinstance(key, int) else "s--"
        ax.semilogy(sizes, errs, style, label=label)
    ax.set_xlabel("observed entries")
    ax.set_ylabel("relative error (unobserved)")
    ax.set_title("100 x 100, rank 5")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
