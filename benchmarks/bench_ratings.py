"""Rating matrices at MovieLens scale, given as scipy.sparse: time, memory, RMSE.

Run ``python benchmarks/bench_ratings.py --size 100k`` (or ``1m``, ``10m``).
Writes ``benchmarks/results/ratings_<size>.md`` and prints the table.

Data: :func:`sklearn_mc.datasets.make_ratings` with ``output="sparse"``
(rank 5 signal, noise 0.5, popularity-skewed, 1..5 levels) at the shape and
number of ratings of MovieLens-100K (943 x 1682, 10⁵), -1M (6040 x 3706,
10⁶) and -10M (70,000 x 10,000, 10⁷); never MovieLens itself. A seeded 10 %
of the observed ratings is held out (``ObservedEntries.split``); every method
fits the other 90 % and is scored by RMSE on the held-out ratings.

Each method runs in a fresh subprocess (the data are handed over in an
``.npz`` file), so its peak resident memory (``ru_maxrss``) is its own: the
table gives it beside the RSS of the same process after importing torch and
loading the data, before fitting. Methods:

- every sklearn_mc imputer that accepts sparse input, at its defaults
  (``fit`` on the CSR matrix, ``predict_entries`` on the held-out pairs; the
  time of a separate ``predict_entries`` call on 10⁶ random pairs is given);
- ``item mean``: each item's mean training rating (global mean for items
  without one);
- ``torch biased MF``: a plain biased matrix factorisation written here in
  torch (rank 20, per-entry L2 penalty 0.02, Adam, batches of 32,768, 20
  epochs; no early stopping or penalty path), the reference a user would
  write;
- ``surprise SVD``: scikit-surprise's ``SVD`` at its defaults (100 factors,
  20 epochs of per-rating SGD, predictions clipped to [1, 5]) if
  ``import surprise`` works (``pip install scikit-surprise``).

Torch uses ``--threads`` threads (default 1). The machine the committed
tables come from was shared with other jobs: wall times are upper bounds, and
the table also gives each fitting process's CPU time. ``--methods`` picks a
subset (e.g. ``--methods SGDMFImputer "item mean"``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    Timer,
    command,
    environment,
    markdown_table,
    write_report,
)

SIZES = {
    "100k": (943, 1682, 100_000),
    "1m": (6040, 3706, 1_000_209),
    "10m": (70_000, 10_000, 10_000_000),
}
SEED = 0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------ worker
def _item_mean(train, test):
    n_items = train["shape"][1]
    counts = np.bincount(train["cols"], minlength=n_items)
    sums = np.bincount(train["cols"], weights=train["values"], minlength=n_items)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), train["values"].mean())
    return means[test["cols"]], {}


def _torch_biased_mf(train, test, rank=20, reg=0.02, epochs=20, batch=32768):
    import torch

    n_users, n_items = train["shape"]
    gen = torch.Generator().manual_seed(SEED)
    r = torch.as_tensor(train["rows"])
    c = torch.as_tensor(train["cols"])
    v = torch.as_tensor(train["values"], dtype=torch.float32)
    mu = float(v.mean())
    U = (0.01 * torch.randn(n_users, rank, generator=gen)).requires_grad_()
    V = (0.01 * torch.randn(n_items, rank, generator=gen)).requires_grad_()
    bu = torch.zeros(n_users, requires_grad=True)
    bi = torch.zeros(n_items, requires_grad=True)
    opt = torch.optim.Adam([U, V, bu, bi], lr=5e-3)
    for _ in range(epochs):
        for idx in torch.randperm(v.numel(), generator=gen).split(batch):
            ri, ci = r[idx], c[idx]
            u, w = U[ri], V[ci]
            pred = mu + bu[ri] + bi[ci] + (u * w).sum(1)
            penalty = u.square().sum(1) + w.square().sum(1)
            penalty = penalty + bu[ri].square() + bi[ci].square()
            loss = ((v[idx] - pred).square() + reg * penalty).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        rt, ct = torch.as_tensor(test["rows"]), torch.as_tensor(test["cols"])
        pred = mu + bu[rt] + bi[ct] + (U[rt] * V[ct]).sum(1)
    return pred.double().numpy(), {}


def _surprise_svd(train, test):
    import pandas as pd
    from surprise import SVD, Dataset, Reader

    frame = pd.DataFrame({"u": train["rows"], "i": train["cols"], "r": train["values"]})
    data = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5)))
    algo = SVD(random_state=SEED)
    algo.fit(data.build_full_trainset())
    pred = np.fromiter(
        (
            algo.predict(u, i).est
            for u, i in zip(test["rows"], test["cols"], strict=True)
        ),
        dtype=np.float64,
        count=test["rows"].size,
    )
    return pred, {}


def _sklearn_mc(name, train, test):
    import scipy.sparse as sp

    import sklearn_mc

    S = sp.csr_array(
        (train["values"], (train["rows"], train["cols"])), shape=tuple(train["shape"])
    )
    est = getattr(sklearn_mc, name)(random_state=SEED).fit(S)
    pred = est.predict_entries(test["rows"], test["cols"])
    rng = np.random.RandomState(SEED)
    rows = rng.randint(0, S.shape[0], 10**6)
    cols = rng.randint(0, S.shape[1], 10**6)
    with Timer() as t:
        est.predict_entries(rows, cols)
    extra = {"predict 1e6 (s)": t.wall, "predict 1e6 CPU (s)": t.cpu}
    if hasattr(est, "n_iter_"):
        extra["n_iter"] = est.n_iter_
    return pred, extra


def worker(method: str, data_path: str, out_path: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    with np.load(data_path) as f:
        train = {k[3:]: f[k] for k in f.files if k.startswith("tr_")}
        test = {k[3:]: f[k] for k in f.files if k.startswith("te_")}
    rss_before = _rss_mb()
    with Timer() as t:
        if method == "item mean":
            pred, extra = _item_mean(train, test)
        elif method == "torch biased MF":
            pred, extra = _torch_biased_mf(train, test)
        elif method == "surprise SVD":
            pred, extra = _surprise_svd(train, test)
        else:
            pred, extra = _sklearn_mc(method, train, test)
    rmse = float(np.sqrt(np.mean((pred - test["values"]) ** 2)))
    result = {
        "method": method,
        "fit + predict (s)": t.wall,
        "CPU time (s)": t.cpu,
        "held-out RMSE": rmse,
        "RSS before fit (MB)": rss_before,
        "peak RSS (MB)": _rss_mb(),
        **extra,
    }
    Path(out_path).write_text(json.dumps(result))


# ------------------------------------------------------------------ driver
def sparse_methods() -> list[str]:
    import sklearn_mc

    return [
        name
        for name in sklearn_mc.__all__
        if getattr(getattr(sklearn_mc, name), "_supports_sparse", False)
    ]


def make_data(size: str, path: Path) -> dict:
    from sklearn_mc._observed import ObservedEntries
    from sklearn_mc.datasets import make_ratings

    n_users, n_items, n_ratings = SIZES[size]
    with Timer() as t:
        S = make_ratings(
            n_users,
            n_items,
            density=n_ratings / (n_users * n_items),
            output="sparse",
            random_state=SEED,
        )
    train, test = ObservedEntries.from_sparse(S).split(0.1, random_state=SEED)
    np.savez(
        path,
        tr_rows=train.rows,
        tr_cols=train.cols,
        tr_values=train.values,
        tr_shape=np.array(train.shape),
        te_rows=test.rows,
        te_cols=test.cols,
        te_values=test.values,
        te_shape=np.array(test.shape),
    )
    return {"nnz": S.nnz, "n_train": train.n_observed, "seconds": t.wall}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="100k")
    parser.add_argument(
        "--methods",
        nargs="*",
        default=None,
        help="subset of methods (default: all sparse imputers and references)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.data, args.out, args.threads)
        return

    methods = args.methods or [
        *sparse_methods(),
        "item mean",
        "torch biased MF",
        "surprise SVD",
    ]
    notes = []
    if "surprise SVD" in methods:
        try:
            import surprise  # noqa: F401
        except ImportError as exc:
            methods.remove("surprise SVD")
            notes.append(f"scikit-surprise not importable ({exc}); skipped.")
    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "data.npz"
        info = make_data(args.size, data_path)
        print(f"data: {info}", flush=True)
        for method in methods:
            out = Path(tmp) / "out.json"
            out.unlink(missing_ok=True)
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                method,
                "--data",
                str(data_path),
                "--out",
                str(out),
                "--threads",
                str(args.threads),
            ]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            try:
                proc = subprocess.run(
                    cmd, env=env, timeout=args.timeout, capture_output=True, text=True
                )
            except subprocess.TimeoutExpired:
                rows.append({"method": method, "fit + predict (s)": "timeout"})
                print(f"{method}: timeout after {args.timeout:.0f} s", flush=True)
                continue
            if proc.returncode != 0 or not out.exists():
                tail = (proc.stderr or "").strip().splitlines()[-1:]
                rows.append({"method": method, "fit + predict (s)": f"failed {tail}"})
                print(f"{method}: failed\n{proc.stderr[-2000:]}", flush=True)
                continue
            result = json.loads(out.read_text())
            rows.append(result)
            print(result, flush=True)

    n_users, n_items, _ = SIZES[args.size]
    columns = [
        "method",
        "fit + predict (s)",
        "CPU time (s)",
        "held-out RMSE",
        "peak RSS (MB)",
        "RSS before fit (MB)",
        "predict 1e6 (s)",
        "predict 1e6 CPU (s)",
        "n_iter",
    ]
    text = "\n".join(
        [
            f"# Synthetic ML-{args.size.upper()}-like ratings "
            f"({n_users} x {n_items}, {info['nnz']} ratings, 10 % held out)",
            "",
            f"{command(argv, __file__)}; {environment()}. Generating the sparse "
            f"matrix took {info['seconds']:.1f} s. Load average (1 min) "
            f"before / after the fits: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
            "on this machine: where it exceeds the thread count, other jobs "
            "shared the cores and wall times are upper bounds (the CPU time of "
            "the fitting process, all its threads, is then the better measure "
            "of cost). `predict 1e6` is one `predict_entries` call on "
            "10⁶ random pairs, after the fit.",
            "",
            markdown_table(rows, columns),
            "",
            *notes,
        ]
    )
    write_report(f"ratings_{args.size}", text)


if __name__ == "__main__":
    main()
