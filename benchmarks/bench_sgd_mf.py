"""SGDMFImputer benchmarks: Teoh's 3 x 3 matrix and the 2000 x 2000 lecture case.

Run ``python benchmarks/bench_sgd_mf.py`` (``--quick`` for a small run,
``--part teoh|lecture|memory`` for one part). Writes
``benchmarks/results/sgd_mf.md`` (all tables) and
``benchmarks/results/sgd_mf.png`` (relative error vs sampling rate), and
prints the tables; a ``--quick`` run writes ``sgd_mf_quick.md`` and
``sgd_mf_quick.png`` instead, a single part ``sgd_mf_<part>.md``.

Part 1, Teoh (COMP6248): the 3 x 3 matrix A factorised at rank 2,
fully observed (squared reconstruction loss against the truncated SVD's
Eckart–Young optimum 0.12191 and the notes' SGD result 0.12197) and with
A[1, 0] and A[2, 1] hidden (loss on the observed entries; loss on the full
matrix beside the notes' 1.448). Settings: the plain ``U Vᵀ`` model of the
notes (``biases=False, scaling="none", alpha=0``), with and without the
penalty path (``alpha_init="auto"`` / None), three random seeds.

Part 2, matrix-completion lecture slides: a 2000 x 2000 rank-8
matrix ``U Vᵀ`` (U, V ~ N(0, 1)), entries observed independently with
probability 0.5 %–2 %; time and relative error ``‖X̂ − X‖_F / ‖X‖_F`` on the
missing entries. The oversampling ratio ``ρ = observed / (r (2n − r))``
(degrees of freedom of a rank-r matrix) is printed beside the rate: below
ρ = 1 recovery is impossible for any method. ``--quick`` uses 500 x 500 with
the rates scaled so that ρ is the same.

Part 3 (memory): one fit of an n x n, 1 %-observed matrix in a fresh process;
peak resident memory against the size of one dense copy of X, to show that
training itself adds ``O(nnz + (m + n)·rank)``, not ``O(m·n)``.

Timings: wall and CPU seconds (``benchmarks/_common.Timer``); the header of
the results file gives the machine's load average during the run, since wall
times on a shared machine are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    Timer,
    command,
    environment,
    fancyimpute_or_reason,
    markdown_table,
    report_path,
    write_report,
)

from sklearn_mc import SGDMFImputer
from sklearn_mc.datasets import make_low_rank
from sklearn_mc.metrics import relative_error

A = np.array(
    [
        [0.3374, 0.6005, 0.1735],
        [3.3359, 0.0492, 1.8374],
        [2.9407, 0.5301, 2.2620],
    ]
)
#: the plain U Vᵀ model of Teoh's notes.
PLAIN = dict(alpha=0.0, biases=False, scaling="none", early_stopping=False, tol=0.0)
#: settings for exact recovery in part 2 (stated in the table).
EXACT = dict(
    rank=8,
    alpha=0.0,
    biases=False,
    scaling="none",
    optimizer="sgd",
    learning_rate=0.1,
    early_stopping=False,
    tol=0.0,
    n_iter_no_change=50,
    max_iter=2500,
)


# ---------------------------------------------------------------- part 1
def part_teoh(quick):
    A_missing = A.copy()
    A_missing[1, 0] = A_missing[2, 1] = np.nan
    observed = ~np.isnan(A_missing)
    s = np.linalg.svd(A, compute_uv=False)
    rows = []
    for label, path in (("path (alpha_init='auto')", "auto"), ("no path", None)):
        for seed in range(1 if quick else 3):
            params = dict(rank=2, max_iter=3000, alpha_init=path, random_state=seed)
            full = SGDMFImputer(**PLAIN, **params).fit(A)
            loss_full = float(np.sum((A - full.reconstruct()) ** 2))
            masked = SGDMFImputer(**PLAIN, **params).fit(A_missing)
            R = masked.reconstruct()
            rows.append(
                [
                    label,
                    seed,
                    f"{loss_full:.5f}",
                    f"{loss_full / s[2] ** 2 - 1:+.2%}",
                    f"{np.sum((A - R)[observed] ** 2):.1e}",
                    f"{np.sum((A - R) ** 2):.3f}",
                    f"{R[1, 0]:.3f} / {R[2, 1]:.3f}",
                ]
            )
    header = [
        "settings",
        "seed",
        "full A: loss",
        "vs SVD",
        "masked: observed loss",
        "masked: full loss",
        "A[1,0] / A[2,1] (true 3.336 / 0.530)",
    ]
    text = (
        "## Teoh's example: rank-2 factorisation of the 3 x 3 matrix\n\n"
        f"Truncated SVD (Eckart–Young optimum): {s[2] ** 2:.5f}; the notes' SGD: "
        "0.12197; the notes' masked run: full-matrix loss 1.448 "
        "(A[1,0] = 2.180, A[2,1] = 0.864). Plain model: "
        "`biases=False, scaling='none', alpha=0, rank=2`.\n\n"
        + markdown_table(rows, header)
        + "\n\nWith two of nine entries hidden the rank-2 fit of the other seven "
        "is not unique (12 parameters, 4 gauge freedoms, 7 equations), so "
        "the full-matrix loss depends on the start; the penalty path picks a "
        "low-norm solution.\n"
    )
    return text


# ---------------------------------------------------------------- part 2
def peers():
    out = {}
    try:
        from sklearn_mc import SVDImputer

        out["SVDImputer(rank=8)"] = lambda seed: SVDImputer(
            rank=8, scaling="none", random_state=seed
        )
    except ImportError as exc:
        print(f"SVDImputer skipped: {exc}")
    fancy, reason = fancyimpute_or_reason()
    if fancy is None:
        print(reason)
    else:
        # Their defaults, with the rank given (SoftImpute: max_rank, which
        # also makes it use a randomised SVD instead of a full one).
        out["fancyimpute MatrixFactorization(rank=8)"] = lambda seed: _Fancy(
            "MatrixFactorization", rank=8
        )
        out["fancyimpute SoftImpute(max_rank=8)"] = lambda seed: _Fancy(
            "SoftImpute", max_rank=8
        )
    return out


class _Fancy:
    def __init__(self, name, **params):
        fancyimpute, _ = fancyimpute_or_reason()
        self.model = getattr(fancyimpute, name)(verbose=False, **params)

    def fit_transform(self, X):
        return self.model.fit_transform(X)


def part_lecture(quick):
    n, rank = (500, 8) if quick else (2000, 8)
    rates = np.array([0.5, 0.75, 1.0, 1.25, 1.5, 2.0]) / 100
    rates = rates * (2000 / n)  # same oversampling ratio as the 2000 x 2000 case
    X = make_low_rank(n, n, rank, random_state=0)
    methods = {
        "SGDMF, exact-recovery settings*": lambda seed: SGDMFImputer(
            **{**EXACT, "max_iter": 1000 if quick else EXACT["max_iter"]},
            random_state=seed,
        ),
        "SGDMF, defaults + rank=8": lambda seed: SGDMFImputer(
            rank=8, random_state=seed
        ),
    }
    methods.update(peers())
    results = {name: [] for name in methods}
    rows = []
    for rate in rates:
        observed = np.random.RandomState(1).random_sample(X.shape) < rate
        X_missing = np.where(observed, X, np.nan)
        rho = observed.sum() / (rank * (2 * n - rank))
        for name, make in methods.items():
            with Timer() as timer:
                est = make(0)
                try:
                    out = est.fit_transform(X_missing)
                    err = relative_error(X, out, ~observed)
                except Exception as exc:  # report, do not stop the benchmark
                    err = float("nan")
                    print(f"{name} at {rate:.2%}: {type(exc).__name__}: {exc}")
            n_iter = getattr(est, "n_iter_", "")
            results[name].append(err)
            rows.append(
                [
                    f"{rate:.2%}",
                    f"{rho:.2f}",
                    name,
                    f"{err:.2e}",
                    f"{timer.wall:.1f} / {timer.cpu:.1f}",
                    n_iter,
                ]
            )
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    header = [
        "observed",
        "ρ",
        "method",
        "rel. error (missing)",
        "time (s, wall / CPU)",
        "n_iter",
    ]
    text = (
        f"## Lecture example: {n} x {n}, rank {rank}, random sampling\n\n"
        "*exact-recovery settings: "
        + ", ".join(f"`{k}={v!r}`" for k, v in EXACT.items() if k != "max_iter")
        + f", `max_iter={1000 if quick else EXACT['max_iter']}`"
        + " (the plain U Vᵀ model, no penalty at the end of the path; full-batch"
        " SGD with momentum, which converges to the exact solution where Adam "
        "hovers near it). "
        "Defaults: standard scaling, biases, alpha=1e-3, early stopping on 10 % "
        "of the observed entries. Target: relative error ≤ 1e-3 at 1.25 % "
        "(ρ ≈ 1.57; the same ρ is 5 % in the 500 x 500 quick run). "
        "SVDImputer: `scaling='none'` (the data in its own units). "
        "fancyimpute 0.7.0 at its defaults with the rank given (loaded through "
        "`benchmarks/_common.py`'s compatibility shim).\n\n"
        + markdown_table(rows, header)
        + "\n"
    )
    plot(rates, results, n, rank, quick)
    return text


def plot(rates, results, n, rank, quick):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, errs in results.items():
        ax.plot(100 * rates, errs, marker="o", label=name)
    ax.axhline(1e-3, color="grey", ls=":", label="target 1e-3")
    ax.set_yscale("log")
    ax.set_xlabel("observed entries (%)")
    ax.set_ylabel("relative error on missing entries")
    ax.set_title(f"{n} x {n}, rank {rank}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(report_path("sgd_mf", quick=quick, suffix=".png"), dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- part 3
def _status_mb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak_rss():
    """Current RSS (MB), after resetting the peak (Linux: /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status_mb("VmRSS")


def _peak_rss():
    return _status_mb("VmHWM")


def _memory_child(n, rate, max_iter):
    torch.set_num_threads(1)
    rng = np.random.RandomState(0)
    U = rng.standard_normal((n, 8)).astype(np.float64)
    V = rng.standard_normal((n, 8)).astype(np.float64)
    X = np.full((n, n), np.nan)
    rows = np.flatnonzero(rng.random_sample(n * n) < rate)
    r, c = np.divmod(rows, n)
    X[r, c] = np.einsum("ij,ij->i", U[r], V[c])
    del U, V, rows, r, c
    # Warm up: the first fit imports and initialises parts of torch.
    SGDMFImputer(max_iter=2, random_state=0).fit(X[:50, :50])
    base = _reset_peak_rss()
    with Timer() as timer:
        est = SGDMFImputer(
            rank=8, max_iter=max_iter, early_stopping=False, random_state=0
        ).fit(X)
    peak = _peak_rss()
    print(
        json.dumps(
            {
                "n": n,
                "nnz": int((~np.isnan(X)).sum()),
                "dense_mb": X.nbytes / 2**20,
                "peak_above_baseline_mb": peak - base,
                "fit_seconds": timer.wall,
                "fit_cpu_seconds": timer.cpu,
                "n_iter": est.n_iter_,
            }
        )
    )


def part_memory(quick):
    sizes = [1000, 2000] if quick else [2000, 4000, 8000]
    rows = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--memory-child", str(n)]
        out = subprocess.run(
            cmd, capture_output=True, text=True, check=True, env=os.environ.copy()
        ).stdout
        res = json.loads(out.strip().splitlines()[-1])
        rows.append(
            [
                f"{n} x {n}",
                res["nnz"],
                f"{res['dense_mb']:.0f}",
                f"{res['peak_above_baseline_mb']:.0f}",
                f"{res['peak_above_baseline_mb'] / res['dense_mb']:.2f}",
                f"{res['fit_seconds']:.1f} / {res['fit_cpu_seconds']:.1f}",
            ]
        )
        print(rows[-1], flush=True)
    header = [
        "matrix (1 % observed)",
        "nnz",
        "one dense copy (MB)",
        "peak RSS above baseline (MB)",
        "ratio",
        "fit time (s, wall / CPU, 10 epochs)",
    ]
    return (
        "## Memory of a fit (1 % observed, rank 8, 10 epochs)\n\n"
        "Peak resident memory of `fit` above the process's memory with X "
        "loaded, in units of one dense copy of X. The estimator API takes a "
        "dense X, so `fit` holds a few dense copies (validated copy, scaled "
        "copy, mask, the dense completion); training itself holds only the "
        "triplets and the factors. A constant ratio means memory beyond those "
        "copies does not grow with m·n.\n\n" + markdown_table(rows, header) + "\n"
    )


#: the parts' former names
ALIASES = {"seed001": "teoh", "seed004": "lecture"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small, fast run")
    parser.add_argument(
        "--part",
        choices=["teoh", "lecture", "memory", *ALIASES],
        default=None,
        help="one part only (seed001 and seed004 are old names of teoh, lecture)",
    )
    parser.add_argument("--memory-child", type=int, default=None, help="internal")
    args = parser.parse_args()
    if args.memory_child is not None:
        _memory_child(args.memory_child, 0.01, 10)
        return
    torch.set_num_threads(1)
    part = ALIASES.get(args.part, args.part)
    parts = {"teoh": part_teoh, "lecture": part_lecture, "memory": part_memory}
    chosen = [part] if part else list(parts)
    texts = []
    for name in chosen:
        text = parts[name](args.quick)
        print(text, flush=True)
        texts.append(text)
    name = "sgd_mf" + (f"_{part}" if part else "")
    header = (
        "# SGDMFImputer benchmarks\n\n"
        f"{command()}; 1 torch thread. Environment: {environment()}.\n\n"
    )
    write_report(name, header + "\n".join(texts), quick=args.quick)


if __name__ == "__main__":
    main()
