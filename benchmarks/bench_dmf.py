"""DMF on synthetic ratings: seen and unseen users/items (paper Tables 1-2).

Layout of Table 1 of Nguyen, Tsiligianni and Deligiannis, "Extendable neural
matrix completion" (ICASSP 2018; Table 2 is from their "Learning discrete
matrix factorization models", IEEE SPL 2018): a share of the users and of the items is
withheld from training entirely (new users, new items). Every observed rating
is either an input or, with probability ``--test-fraction``, a test entry;
test entries are scored in four areas:

I    training users x training items   (fit_transform)
II   new users x training items        (transform of the new users' rows)
III  training users x new items        (complete(X_new_cols=...))
IV   new users x new items             (complete(X_new_rows, X_new_cols))

Peers (SGDMFImputer, SVDImputer) complete areas I and II (their transform
folds new rows in); no peer extends to new columns. A mean baseline uses item
means (I, II), user means (III) and the global mean (IV) of the inputs (each
mean with one extra pseudo-rating at the global mean).

Also measured: DMF-D (levels 1..5, joint training) against rounding the
continuous DMF (Table 2's question), the paper's own input setting
(``leave_target_out=False``), and how close ``transform`` of new users comes
to fitting again with their input ratings in the training matrix.

Run ``python benchmarks/bench_dmf.py`` (2000 x 1000, ~5 % observed) or with
``--quick`` (500 x 300). Writes benchmarks/results/dmf.md and dmf.png
(``dmf_quick.md`` and ``dmf_quick.png`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

from sklearn_mc import DMFImputer
from sklearn_mc.datasets import make_ratings
from sklearn_mc.metrics import mae, rmse
from sklearn_mc.model_selection import hide_entries, split_indices

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    Timer,
    command,
    environment,
    fmt,
    markdown_table,
    report_path,
    write_report,
)

AREAS = ("I", "II", "III", "IV")
LEVELS = [1, 2, 3, 4, 5]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small, fast run")
    parser.add_argument("--n-users", type=int, default=None)
    parser.add_argument("--n-items", type=int, default=None)
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument(
        "--new-fraction",
        type=float,
        default=None,
        help="share of users and of items withheld as new (0.1; 0.2 with --quick)",
    )
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--epoch-scaling",
        action="store_true",
        help="instead: one-epoch CPU time at 1k/2k/4k rows x 50 (reliability "
        "probe D6), with the column cache and without it (the old exact "
        "per-step encoding)",
    )
    return parser.parse_args()


def epoch_scaling(sizes=(1000, 2000, 4000)):
    """CPU seconds of one DMF epoch on rank-5 ``m x 50``, 20 % missing."""
    from sklearn_mc import _dmf_training as _dmf

    DMFImputer(max_iter=1, random_state=0, device="cpu").fit(
        np.random.RandomState(0).randn(50, 10)
    )  # warm-up
    lines = [
        "## One epoch of DMFImputer (defaults, max_iter=1), m x 50",
        "",
        "CPU seconds (time.process_time, one torch thread; wall times on a "
        "shared machine are longer). 'exact' encodes every touched column "
        "from all its entries at each step (the code before the cache). "
        f"{environment()}.",
        "",
        "| rows | cached (default) | exact (old) | cache intervals (rows, cols) |",
        "|---|---|---|---|",
    ]
    for m in sizes:
        rng = np.random.RandomState(0)
        Z = rng.randn(m, 5) @ rng.randn(5, 50)
        Z[rng.rand(m, 50) < 0.2] = np.nan
        cpu = {}
        for mode, factor in (("cached", _dmf._CACHE_FACTOR), ("exact", np.inf)):
            saved, _dmf._CACHE_FACTOR = _dmf._CACHE_FACTOR, factor
            try:
                with Timer() as timer:
                    est = DMFImputer(max_iter=1, random_state=0, device="cpu").fit(Z)
                cpu[mode] = timer.cpu
                if mode == "cached":
                    intervals = est._cache_intervals
            finally:
                _dmf._CACHE_FACTOR = saved
        lines.append(
            f"| {m} | {cpu['cached']:.1f} | {cpu['exact']:.1f} | {intervals} |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


class Split:
    """The data cut into the four areas, inputs and test entries."""

    def __init__(self, X, new_fraction, test_fraction, seed):
        n, m = X.shape
        self.tr_r, self.new_r = split_indices(n, new_fraction, seed)
        self.tr_c, self.new_c = split_indices(m, new_fraction, seed + 1)
        self.inputs, self.test = hide_entries(X, test_fraction, seed + 2)
        self.X = X

    def block(self, A, rows, cols):
        return A[np.ix_(rows, cols)]

    def area(self, name):
        rows = {"I": self.tr_r, "II": self.new_r, "III": self.tr_r, "IV": self.new_r}
        cols = {"I": self.tr_c, "II": self.tr_c, "III": self.new_c, "IV": self.new_c}
        return rows[name], cols[name]

    def score(self, name, pred):
        rows, cols = self.area(name)
        truth = self.block(self.X, rows, cols)
        test = self.block(self.test, rows, cols)
        if not test.any():
            return np.nan, np.nan
        return rmse(truth, pred, test), mae(truth, pred, test)

    def inputs_of(self, name):
        return self.block(self.inputs, *self.area(name))


def dmf_areas(est, split):
    """Fit on area I's inputs; complete all four areas."""
    with Timer() as timer:
        pred_i = est.fit_transform(split.inputs_of("I"))
    res = est.complete(
        split.inputs_of("II"), split.inputs_of("III"), X_new_both=split.inputs_of("IV")
    )
    preds = {"I": pred_i, "II": res.new_rows, "III": res.new_cols, "IV": res.new_both}
    return preds, (timer.wall, timer.cpu)


def peer_areas(est, split):
    with Timer() as timer:
        pred_i = est.fit_transform(split.inputs_of("I"))
    preds = {"I": pred_i, "II": est.transform(split.inputs_of("II"))}
    return preds, (timer.wall, timer.cpu)


def mean_areas(split):
    X_i = split.inputs_of("I")
    seen = ~np.isnan(X_i)
    values = np.where(seen, X_i, 0.0)
    glob = values.sum() / seen.sum()
    # users or items without an input rating get the global mean
    item = (values.sum(0) + glob) / (seen.sum(0) + 1)
    user = (values.sum(1) + glob) / (seen.sum(1) + 1)
    shape = {a: tuple(len(ix) for ix in split.area(a)) for a in AREAS}
    return {
        "I": np.broadcast_to(item, shape["I"]),
        "II": np.broadcast_to(item, shape["II"]),
        "III": np.broadcast_to(user[:, None], shape["III"]),
        "IV": np.full(shape["IV"], glob),
    }


def load_peers():
    peers = {}
    for name in ("SGDMFImputer", "SVDImputer"):
        try:
            import sklearn_mc

            peers[name] = getattr(sklearn_mc, name)
        except (ImportError, AttributeError) as exc:
            print(f"{name} skipped: {exc}")
    return peers


def score(value):
    """An error in a table cell: three decimals, "–" where there is none."""
    return fmt(None if value is None else float(value), 3, fixed=True)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.epoch_scaling:
        write_report("dmf_epoch_scaling", epoch_scaling())
        return
    n_users = args.n_users or (500 if args.quick else 2000)
    n_items = args.n_items or (300 if args.quick else 1000)
    X = make_ratings(n_users, n_items, density=args.density, random_state=args.seed)
    new_fraction = args.new_fraction or (0.2 if args.quick else 0.1)
    split = Split(X, new_fraction, args.test_fraction, args.seed)
    n_obs = int((~np.isnan(X)).sum())
    counts = {a: int(split.block(split.test, *split.area(a)).sum()) for a in AREAS}
    print(
        f"ratings {n_users} x {n_items}, {n_obs} observed ({n_obs / X.size:.1%}); "
        f"new users {split.new_r.size}, new items {split.new_c.size}; "
        f"test entries per area {counts}"
    )

    def dmf(**params):
        return DMFImputer(random_state=args.seed, device="cpu", **params)

    results, times = {}, {}
    preds = {}
    for label, params in (
        ("DMFImputer", {}),
        ("DMFImputer (target in inputs, as the paper)", {"leave_target_out": False}),
        ("DMFImputer levels=1..5 (DMF-D)", {"levels": LEVELS}),
    ):
        print(f"fitting {label} ...", flush=True)
        est = dmf(**params)
        preds[label], times[label] = dmf_areas(est, split)
        wall, cpu = times[label]
        print(f"  {wall:.1f} s ({cpu:.1f} s CPU), {est.n_iter_} epochs", flush=True)
        results[label] = {a: split.score(a, preds[label][a]) for a in AREAS}
    for name, cls in load_peers().items():
        print(f"fitting {name} ...", flush=True)
        try:
            p, times[name] = peer_areas(cls(random_state=args.seed), split)
        except Exception as exc:  # a peer still being written must not stop us
            print(f"{name} skipped: {type(exc).__name__}: {exc}")
            continue
        results[name] = {
            a: split.score(a, p[a]) if a in p else (np.nan,) * 2 for a in AREAS
        }
    results["mean baseline"] = {a: split.score(a, mean_areas(split)[a]) for a in AREAS}
    times["mean baseline"] = (0.0, 0.0)

    # -------------------------------------------------- Table 1: the areas
    rows = []
    for label, res in results.items():
        cells = [f"{score(res[a][0])} / {score(res[a][1])}" for a in AREAS]
        wall, cpu = times[label]
        rows.append([label, *cells, f"{wall:.1f} / {cpu:.1f}"])
    header = ["method", *[f"{a} RMSE / MAE" for a in AREAS], "fit s (wall / CPU)"]
    t1 = markdown_table(rows, header)

    # ------------------------------------------- Table 2: discrete outputs
    cont = preds["DMFImputer"]
    disc = preds["DMFImputer levels=1..5 (DMF-D)"]
    rows = []
    for label, pred in (
        ("DMF, continuous (not discrete)", cont),
        ("DMF rounded to 1..5", {a: np.clip(np.round(cont[a]), 1, 5) for a in AREAS}),
        ("DMF-D (joint quantiser)", disc),
    ):
        cells = []
        for a in AREAS:
            r, m = split.score(a, pred[a])
            cells.append(f"{score(r)} / {score(m)}")
        rows.append([label, *cells])
    on_levels = all(set(np.unique(disc[a])) <= set(LEVELS) for a in AREAS)
    t2 = markdown_table(rows, ["output", *[f"{a} RMSE / MAE" for a in AREAS]])

    # ------------------------------- Table 3: transform vs fitting again
    print("fitting again with the new users' input ratings inside ...", flush=True)
    rows_all = np.concatenate([split.tr_r, split.new_r])
    refit = dmf().fit(split.block(split.inputs, rows_all, split.tr_c))
    refit_new = refit.transform(split.inputs_of("II"))
    print("fitting with another seed ...", flush=True)
    other = DMFImputer(random_state=args.seed + 1, device="cpu")
    other.fit(split.inputs_of("I"))
    other_new = other.transform(split.inputs_of("II"))
    trans_new = cont["II"]
    test_ii = split.block(split.test, *split.area("II"))
    truth_ii = split.block(X, *split.area("II"))
    rows = [
        ["transform (model fitted without the new users)", trans_new, truth_ii],
        ["fit again with the new users' inputs", refit_new, truth_ii],
        ["RMS difference transform vs fit-again", trans_new, refit_new],
        [
            f"RMS difference transform, seed {args.seed} vs seed {args.seed + 1}",
            trans_new,
            other_new,
        ],
    ]
    rows = [[label, score(rmse(b, a, test_ii))] for label, a, b in rows]
    t3 = markdown_table(rows, ["new users' test entries (area II)", "RMSE"])

    head = (
        f"# DMFImputer on synthetic ratings\n\n"
        f"{command()}: "
        f"`make_ratings({n_users}, {n_items}, density={args.density}, "
        f"random_state={args.seed})` (rank 5, noise 0.5, levels 1..5, Zipf "
        f"popularity), {n_obs} ratings; {split.new_r.size} users and "
        f"{split.new_c.size} items withheld as new; {args.test_fraction:.0%} of "
        f"the ratings are test entries (per area: {counts}). Defaults of every "
        f"estimator, seed {args.seed}, CPU, {args.threads} torch thread(s). "
        f"Environment: {environment()}; wall times are upper bounds on a shared "
        "machine, CPU times (this process) are the better guide.\n"
    )
    text = "\n".join(
        [
            head,
            "## Held-out error by area (paper Table 1 layout)\n",
            t1,
            "\n'–': the method cannot complete that area.\n",
            "## Discrete predictions (paper Table 2 question)\n",
            t2,
            f"\nDMF-D outputs exactly on the levels in every area: {on_levels}.\n",
            "## Unseen users: transform vs fitting again\n",
            t3,
            "",
        ]
    )
    write_report("dmf", text, quick=args.quick)
    plot(results, report_path("dmf", quick=args.quick, suffix=".png"))


def plot(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        print(f"plot skipped: {exc}")
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(results)
    for k, (label, res) in enumerate(results.items()):
        values = [res[a][0] for a in AREAS]
        ax.bar(np.arange(4) + k * width, values, width, label=label)
    ax.set_xticks(np.arange(4) + 0.4 - width / 2, [f"area {a}" for a in AREAS])
    ax.set_ylabel("test RMSE")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
