"""MLPImputer benchmarks: Alkady's small-matrix experiment, tabular sets, scale.

Run ``python benchmarks/bench_mlp.py`` (``--quick`` for a small run, ``--part``
to run one part, which replaces only its own section of the results file).
Writes ``benchmarks/results/mlp.md`` (all tables),
``benchmarks/results/mlp_seed.png`` (predicted vs true masked entries) and
prints the tables; a ``--quick`` run writes ``mlp_quick.md`` and
``mlp_seed_quick.png`` instead, so it never replaces the full results.

Part 1, Alkady's experiment: random n x n matrices A = U Vᵀ, U, V ~ N(0, 1),
rank r, m entries masked (m at most the paper's bound n² - 2nr + r²). Every
matrix, flattened, is one sample. Methods:

* paper net: the paper's recipe in plain torch (two hidden ReLU layers, Adam
  lr 1e-3, batch 64, a 90/10 split of the training matrices, one fixed mask
  per training matrix), supervised on the true masked entries;
* MLPImputer (full train): fitted on the same training matrices, fully
  observed and flattened (n² columns), hiding random entries at every batch
  (``mask_fraction = m / n²``), then ``transform`` of the masked test
  matrices: the same information as the paper net, only the masks are redrawn;
* MLPImputer (observed only): ``fit_transform`` of training and test
  matrices that all have m masked entries: the ground truth of a masked
  entry is never seen, by any matrix;
* SVDImputer: exact rank-r completion of each test matrix on its own
  (``rank=r, center=False``), which needs no training set at all;
* predict 0: the prior mean, whose RMSE is the entry std √r.

Part 2: scikit-learn's bundled diabetes, wine, breast_cancer and digits;
columns standardised (z-scores over the full data, so RMSEs are comparable
across sets and columns weigh equally), 20 % of the entries hidden at random,
5 seeds, RMSE on the hidden entries.

Part 3: fit on 10⁵ x 50 on the CPU (and on fewer rows), each in a fresh
process: time per epoch and peak resident memory above the process baseline,
fitted as ``a + b * size(X)`` to show that memory beyond copies of X does not
grow with the number of rows.

Timings are wall and CPU seconds (``benchmarks/_common.Timer``); the results
file's header gives the machine's load average, since wall times on a shared
machine are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import torch

from sklearn_mc import MLPImputer
from sklearn_mc.metrics import rmse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    Timer,
    command,
    environment,
    markdown_table,
    report_path,
)


# ---------------------------------------------------------------- part 1
def make_matrices(n_mats, n, r, m, rng):
    """Flattened rank-r n x n matrices and a mask of m entries per matrix."""
    U = rng.standard_normal((n_mats, n, r))
    V = rng.standard_normal((n_mats, n, r))
    A = np.einsum("bik,bjk->bij", U, V).reshape(n_mats, n * n)
    order = np.argsort(rng.random_sample((n_mats, n * n)), axis=1)
    masked = np.zeros_like(A, dtype=bool)
    np.put_along_axis(masked, order[:, :m], True, axis=1)
    return A, masked


def paper_net(A_train, masked_train, A_test, masked_test, width, max_epochs, seed):
    """The paper's network: flattened matrix + mask in, whole matrix out."""
    torch.manual_seed(seed)
    d = A_train.shape[1]
    net = torch.nn.Sequential(
        torch.nn.Linear(2 * d, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, d),
    )

    def tensors(A, masked):
        a = torch.as_tensor(A, dtype=torch.float32)
        h = torch.as_tensor(masked)
        return a, h, torch.cat([a * ~h, (~h).float()], 1)

    a, h, x = tensors(A_train, masked_train)
    n_val = len(a) // 10
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(a), generator=gen)
    val, tr = perm[:n_val], perm[n_val:]

    def masked_mse(idx):
        err = (net(x[idx]) - a[idx])[h[idx]]
        return (err**2).mean()

    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    # The paper trains a fixed number of epochs; the best epoch on the 10 %
    # split is kept (no early stop: these nets sit on a plateau at "predict
    # the mean" for many epochs before they start to learn).
    best, best_state = float("inf"), None
    for _epoch in range(max_epochs):
        for idx in torch.split(tr[torch.randperm(len(tr), generator=gen)], 64):
            opt.zero_grad()
            masked_mse(idx).backward()
            opt.step()
        with torch.no_grad():
            loss = float(masked_mse(val))
        if loss < best:
            best = loss
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    a, h, x = tensors(A_test, masked_test)
    with torch.no_grad():
        return net(x).double().numpy(), _epoch + 1


def svd_complete(A_test, masked_test, n, r):
    try:
        from sklearn_mc import SVDImputer
    except ImportError as exc:
        return None, f"SVDImputer skipped: {exc}"
    out = np.empty_like(A_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (a, h) in enumerate(zip(A_test, masked_test, strict=True)):
            M = a.reshape(n, n).copy()
            M[h.reshape(n, n)] = np.nan
            est = SVDImputer(
                rank=r, center=False, scaling="none", random_state=0, device="cpu"
            )
            out[i] = est.fit_transform(M).ravel()
    return out, ""


def part_alkady(quick):
    cases = [(2, 1, 1), (4, 2, 3), (8, 2, 16)]
    n_train = 4000 if quick else 10000
    n_test = 300 if quick else 500
    max_epochs = 40 if quick else 100
    rows, scatter, notes = [], [], []
    for n, r, m in cases:
        rng = np.random.RandomState(n * 100 + m)
        A_tr, h_tr = make_matrices(n_train, n, r, m, rng)
        A_te, h_te = make_matrices(n_test, n, r, m, rng)
        width = max(64, 8 * n * n)  # the paper's O(n²) neurons
        preds, info = {}, {}
        with Timer() as t:
            preds["paper net"], ep = paper_net(
                A_tr, h_tr, A_te, h_te, width, max_epochs, 0
            )
        info["paper net"] = (t, ep)
        common = dict(
            hidden_layer_sizes=(width, width),
            mask_fraction=m / n**2,
            max_iter=max_epochs,
            n_iter_no_change=max_epochs,  # same budget as the paper net
            device="cpu",
            random_state=0,
        )
        with Timer() as t:
            est = MLPImputer(**common).fit(A_tr)
            X_te = np.where(h_te, np.nan, A_te)
            preds["MLPImputer (full train)"] = est.transform(X_te)
        info["MLPImputer (full train)"] = (t, est.n_iter_)
        with Timer() as t:
            X_all = np.vstack([np.where(h_tr, np.nan, A_tr), X_te])
            est = MLPImputer(**common)
            preds["MLPImputer (observed only)"] = est.fit_transform(X_all)[n_train:]
        info["MLPImputer (observed only)"] = (t, est.n_iter_)
        with Timer() as t:
            svd, note = svd_complete(A_te, h_te, n, r)
        if svd is None:
            notes.append(note)
        else:
            preds["SVDImputer (rank r)"] = svd
            info["SVDImputer (rank r)"] = (t, "")
        # Entries of a row or column with fewer than r observed entries are
        # not determined by the observed ones: no method can recover them.
        obs = ~h_te.reshape(-1, n, n)
        lost = (obs.sum(axis=1) < r).any(axis=1) | (obs.sum(axis=2) < r).any(axis=1)
        if svd is not None:
            keep = np.repeat(~lost[:, None], n * n, axis=1) & h_te
            notes.append(
                f"{n}x{n}, r={r}, m={m}: {lost.sum()} of {n_test} test matrices have "
                f"a row or column with fewer than r observed entries; SVDImputer "
                f"RMSE on the other {n_test - lost.sum()}: "
                f"{rmse(A_te, svd, keep):.3g}; its median absolute error is "
                f"{np.median(np.abs(A_te - svd)[h_te]):.3f}, so whatever RMSE it has "
                "comes from a few ill-conditioned or undetermined matrices."
            )
        preds["predict 0"] = np.zeros_like(A_te)
        info["predict 0"] = (None, "")
        sigma = np.sqrt(r)
        truth = A_te[h_te]
        for name, P in preds.items():
            err = P[h_te] - truth
            rows.append(
                dict(
                    case=f"{n}x{n}, r={r}, m={m}",
                    method=name,
                    rmse=rmse(A_te, P, h_te),
                    rel=rmse(A_te, P, h_te) / sigma,
                    within=float(np.mean(np.abs(err) < sigma)),
                    median=float(np.median(np.abs(err))),
                    timer=info[name][0],
                    epochs=info[name][1],
                )
            )
            scatter.append((f"{n}x{n}, r={r}, m={m}", name, truth, P[h_te], sigma))
    bound = "; ".join(f"{n}x{n} r={r}: {(n - r) ** 2}" for n, r, _ in cases)
    lines = [
        "## Part 1: Alkady's experiment (n x n, rank r, m masked entries)",
        "",
        f"Training matrices: {n_train}, test matrices: {n_test}, at most "
        f"{max_epochs} epochs, hidden width max(64, 8 n²). Bound n²-2nr+r² = "
        f"{bound}. σ = √r is the std of an entry; 'within 1σ' is the share of "
        "masked entries predicted within √r of the truth (the paper's 68 % "
        "figure); 'predict 0' shows that share for the prior mean.",
        "",
    ]
    cells = [
        [
            row["case"],
            row["method"],
            f"{row['rmse']:.3f}",
            f"{row['rel']:.3f}",
            f"{100 * row['within']:.1f} %",
            f"{row['median']:.3f}",
            _seconds(row["timer"]),
            row["epochs"],
        ]
        for row in rows
    ]
    header = ["case", "method", "RMSE", "RMSE / √r", "within 1σ", "median abs err"]
    header += ["time (s, wall / CPU)", "epochs"]
    lines += [markdown_table(cells, header), ""] + notes
    lines += [
        "",
        "All three networks get the same epoch budget and keep their best epoch "
        "on held-out data (the paper net: 10 % of the training matrices; "
        "MLPImputer: 10 % of the observed entries). 'full train' is fitted on "
        "the fully observed training matrices and completes the test matrices "
        "with `transform`; 'observed only' never sees a masked entry of any "
        "matrix. For 2x2 rank 1, 'observed only' cannot learn by construction: "
        "an entry is determined only by all three others, and each training "
        "matrix already misses one.",
    ]
    plot_alkady(scatter, cases, quick)
    return lines


def _seconds(timer) -> str:
    return "0.0 / 0.0" if timer is None else f"{timer.wall:.1f} / {timer.cpu:.1f}"


def plot_alkady(scatter, cases, quick):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(name for _, name, *_ in scatter))
    methods.remove("predict 0")
    fig, axes = plt.subplots(
        len(cases),
        len(methods),
        figsize=(3.2 * len(methods), 3.2 * len(cases)),
        squeeze=False,
    )
    labels = list(dict.fromkeys(case for case, *_ in scatter))
    for case, name, truth, pred, sigma in scatter:
        if name not in methods:
            continue
        ax = axes[labels.index(case), methods.index(name)]
        lim = np.percentile(np.abs(truth), 99) * 1.1
        ax.scatter(truth, pred, s=3, alpha=0.4)
        grid = np.array([-lim, lim])
        ax.plot(grid, grid, "k-", lw=0.8)
        ax.fill_between(grid, grid - sigma, grid + sigma, color="C1", alpha=0.2)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        within = 100 * np.mean(np.abs(pred - truth) < sigma)
        ax.set_title(f"{name}\n{case}: {within:.0f} % within 1σ", fontsize=8)
        ax.set_xlabel("true masked entry", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)
    fig.tight_layout()
    fig.savefig(report_path("mlp_seed", quick=quick, suffix=".png"), dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- part 2
def part_tabular(quick):
    from sklearn import datasets
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

    from sklearn_mc.model_selection import hide_entries

    try:
        import fancyimpute  # noqa: F401
    except ImportError as exc:
        print(f"fancyimpute skipped: {exc}")

    loaders = {
        "diabetes": datasets.load_diabetes,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
    }
    methods = {
        "MLPImputer": lambda s: MLPImputer(device="cpu", random_state=s),
        "mean": lambda s: SimpleImputer(strategy="mean"),
        "KNNImputer": lambda s: KNNImputer(),
        "IterativeImputer": lambda s: IterativeImputer(random_state=s),
    }
    seeds = range(2 if quick else 5)
    lines = [
        "## Part 2: scikit-learn tabular sets, 20 % of entries hidden at random",
        "",
        f"RMSE on the hidden entries of the standardised columns (z-scores over "
        f"the full data, so sets are comparable), mean ± std over {len(seeds)} "
        "seeds; lower is better. Defaults for every method (MLPImputer: "
        "`MLPImputer(random_state=seed)`; KNNImputer 5 neighbours; "
        "IterativeImputer BayesianRidge, 10 rounds).",
        "",
    ]
    header = ["data (n x d)", *methods, "MLP rank", "MLP epochs"]
    table = []
    for name, load in loaders.items():
        X = load().data.astype(float)
        std = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
        scores = {k: [] for k in methods}
        epochs = []
        for seed in seeds:
            X_train, hidden = hide_entries(X, 0.2, random_state=seed)
            for method, make in methods.items():
                est = make(seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = est.fit_transform(X_train)
                scores[method].append(rmse(X, out, hidden))
                if method == "MLPImputer":
                    epochs.append(est.n_iter_)
        means = {k: np.mean(v) for k, v in scores.items()}
        rank = 1 + sum(v < means["MLPImputer"] for v in means.values())
        best = min(means.values())
        cells = [
            ("**{:.3f}** ± {:.3f}" if means[k] == best else "{:.3f} ± {:.3f}").format(
                means[k], np.std(v)
            )
            for k, v in scores.items()
        ]
        table.append(
            [
                f"{name} ({X.shape[0]} x {X.shape[1]})",
                *cells,
                f"{rank} of {len(methods)}",
                int(np.mean(epochs)),
            ]
        )
        print(table[-1], flush=True)
    return lines + [markdown_table(table, header)]


# ---------------------------------------------------------------- part 3
def _scale_worker(n_rows, n_cols, max_iter):
    """Run in a fresh process: one fit, report time and peak memory."""
    import resource

    torch.set_num_threads(1)
    from sklearn_mc.datasets import make_low_rank

    # Warm up torch (lazy imports, allocator) so that the baseline holds them.
    MLPImputer(max_iter=2, device="cpu").fit(np.random.RandomState(0).rand(50, n_cols))
    X = make_low_rank(n_rows, n_cols, 5, noise=0.1, random_state=0)
    X[np.random.RandomState(1).rand(*X.shape) < 0.2] = np.nan
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with Timer() as t:
        est = MLPImputer(max_iter=max_iter, device="cpu", random_state=0).fit(X)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            dict(
                n_rows=n_rows,
                x_mb=X.nbytes / 2**20,
                extra_mb=(peak - base) / 1024,  # ru_maxrss is in KiB on Linux
                seconds=t.wall,
                cpu_seconds=t.cpu,
                epochs=est.n_iter_,
                width=est.hidden_layer_sizes_[0],
            )
        )
    )


def part_scale(quick):
    n_cols = 50
    sizes = [2000, 5000, 10000] if quick else [12500, 25000, 50000, 100000]
    max_iter = 2 if quick else 3
    results = []
    for n_rows in sizes:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                str(n_rows),
                str(n_cols),
                str(max_iter),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    x_mb = np.array([r["x_mb"] for r in results])
    extra = np.array([r["extra_mb"] for r in results])
    b, a = np.polyfit(x_mb, extra, 1)
    lines = [
        f"## Part 3: fitting {sizes[-1]} x {n_cols} on the CPU",
        "",
        f"Rank-5 data + noise, 20 % missing, `MLPImputer(max_iter={max_iter})` "
        "(defaults otherwise: batch 64, early stopping on 10 % held-out entries), "
        "one CPU thread, each size in a fresh process after a warm-up fit. "
        "'extra' is the peak resident memory during `fit` above the baseline "
        "that already holds X (ru_maxrss).",
        "",
    ]
    table = [
        [
            res["n_rows"],
            f"{res['x_mb']:.1f}",
            f"{res['extra_mb']:.1f}",
            f"{res['extra_mb'] / res['x_mb']:.2f}",
            f"{res['seconds']:.1f} / {res['cpu_seconds']:.1f}",
            f"{res['cpu_seconds'] / res['epochs']:.1f}",
        ]
        for res in results
    ]
    header = ["rows", "X (MB)", "extra peak (MB)", "extra / X"]
    header += ["fit (s, wall / CPU)", "CPU s / epoch"]
    lines += [markdown_table(table, header)]
    lines += [
        "",
        f"Least-squares fit: extra ≈ {a:.1f} MB + {b:.2f} × size(X). The slope "
        "counts X-sized copies (the base class's validated, column-selected and "
        "scaled copies plus masks); the intercept (network, optimiser state, "
        f"mini-batch and {4096}-row chunk activations) does not grow with the rows.",
    ]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small, fast run")
    parser.add_argument(
        "--part",
        choices=["alkady", "tabular", "scale", "all", "seed"],
        default="all",
        help="one part only ('seed' is the old name of 'alkady')",
    )
    parser.add_argument("--worker", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _scale_worker(*args.worker)
        return
    torch.set_num_threads(1)
    parts = {"alkady": part_alkady, "tabular": part_tabular, "scale": part_scale}
    name = "alkady" if args.part == "seed" else args.part
    chosen = parts if name == "all" else {name: parts[name]}
    header = [
        "# MLPImputer benchmarks",
        "",
        "`python benchmarks/bench_mlp.py [--quick] [--part alkady|tabular|scale]` "
        f"(this run: {command()}); each part replaces its own section of this "
        f"file. Environment: {environment()}. Wall times on a shared machine are "
        "upper bounds; compare them within a table only.",
        "",
    ]
    print("\n".join(header), flush=True)
    path = report_path("mlp", quick=args.quick)
    for key, part in chosen.items():
        part_lines = part(args.quick)
        if args.quick:
            part_lines[0] += " (--quick)"
        print("\n".join(part_lines) + "\n", flush=True)
        sections = _read_sections(path)  # other runs may have written since
        sections[key] = "\n".join(part_lines).strip() + "\n"
        text = (
            "\n".join(header)
            + "\n"
            + "\n".join(sections[k] for k in parts if k in sections)
        )
        path.write_text(text)


def _read_sections(path):
    """The sections of an earlier results file, keyed by part name."""
    if not path.exists():
        return {}
    keys = {"Part 1": "alkady", "Part 2": "tabular", "Part 3": "scale"}
    sections = {}
    for chunk in path.read_text().split("\n## ")[1:]:
        key = keys.get(chunk[:6])
        if key:
            sections[key] = "## " + chunk.strip() + "\n"
    return sections


if __name__ == "__main__":
    main()
