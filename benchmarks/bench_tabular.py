"""Tabular imputation benchmark: real tables shipped inside packages, three patterns.

Run ``python benchmarks/bench_tabular.py`` (``--quick`` for one seed, one
rate; ``--methods`` / ``--tables`` / ``--patterns`` / ``--rates`` /
``--seeds`` to choose; ``--timing`` for the fit-time comparison on a
20,000 x 20 table). Writes ``benchmarks/results/tabular.md`` (all tables),
``benchmarks/results/tabular_rank.png`` (mean rank per method),
``benchmarks/results/tabular_raw.json`` (every fit) and prints the tables;
``--quick`` writes ``tabular_quick.*`` and ``tabular_quick_raw.json``
instead, so that it never replaces the full run's files.

Tables (no downloads: each ships inside an installable package):
scikit-learn's ``load_diabetes``, ``load_wine``, ``load_breast_cancer``,
``load_iris``, the 20 highest-variance pixels of ``load_digits`` (first 600
rows), statsmodels' ``macrodata`` (US macro series, numeric columns),
``star98`` (STAR school results, 303 x 22) and ``anes96`` (election survey,
944 x 11) when statsmodels is installed, and vega_datasets' local ``cars``
(UCI auto-mpg, 392 x 7) when vega_datasets is installed. Every column is
standardised with the full table's mean and std (z-scores), then entries are
hidden with :func:`sklearn_mc.datasets.make_mask`: ``random`` (MCAR), ``mar``
and ``mnar`` (the HyperImpute benchmark's logistic masks), at 20 % and 50 %
of all entries. The error is the RMSE on the hidden entries, in column-std
units; ``rank`` is the rank of a method among all methods on one (table,
pattern, rate, seed) fit, averaged. Each fit runs in a forked child that is
stopped after ``--max-fit-s`` wall seconds (default 300); a method stopped on
a table is skipped on that table's later fits, and the report says so.

Methods: scikit-learn's ``SimpleImputer(mean)``, ``KNNImputer``,
``IterativeImputer(BayesianRidge)`` and ``IterativeImputer(ExtraTrees)``
(the usual missForest stand-in; 50 trees, 5 rounds), every sklearn_mc
imputer at its defaults, and the peers that install here: miceforest (LightGBM
chained equations, one
imputed data set, default iterations) and fancyimpute's ``SoftImpute`` and
``IterativeSVD`` through the loader in ``_common.py``. hyperimpute is not
installed: ``pip install hyperimpute`` pulls TensorFlow, Jupyter, CatBoost,
XGBoost and Optuna (about 80 packages) and upgrades shared ones, which this
shared machine cannot take.

Timings were taken on a shared machine (2 cores, several jobs at once): they
are upper bounds, comparable within one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import (  # noqa: E402
    Timer,
    environment,
    fancyimpute_or_reason,
    markdown_table,
    report_path,
    write_report,
)

from sklearn_mc.datasets import make_mask  # noqa: E402

SK_MC = [
    "ChainedImputer",
    "MLPImputer",
    "SVDImputer",
    "KNNImputer",
    "SGDMFImputer",
    "DeepMFImputer",
    "AIRNetImputer",
    "DMFImputer",
]


# ----------------------------------------------------------------- tables
def load_tables() -> dict[str, np.ndarray]:
    """The benchmark's tables, each a complete float array."""
    from sklearn import datasets

    tables = {
        "diabetes": datasets.load_diabetes().data,
        "wine": datasets.load_wine().data,
        "breast_cancer": datasets.load_breast_cancer().data,
        "iris": datasets.load_iris().data,
    }
    digits = datasets.load_digits().data[:600]
    tables["digits20"] = digits[:, np.argsort(-digits.var(axis=0), kind="stable")[:20]]
    try:
        import statsmodels.api as sm

        frame = sm.datasets.macrodata.load_pandas().data
        tables["macrodata"] = frame.drop(columns=["year", "quarter"]).to_numpy(float)
        # STAR program school results (California, 1998): 303 x 22
        tables["star98"] = sm.datasets.star98.load_pandas().data.to_numpy(float)
        # 1996 American National Election Study survey: 944 x 11 (codes, counts)
        tables["anes96"] = sm.datasets.anes96.load_pandas().data.to_numpy(float)
    except ImportError:
        pass
    try:
        from vega_datasets import data as vega

        # vega_datasets' bundled copy of the UCI auto-mpg table: 392 complete
        # rows of the 7 numeric columns (the model year as a number)
        frame = vega.cars()
        frame["Year"] = frame["Year"].dt.year
        numeric = frame.select_dtypes("number").dropna()
        tables["cars"] = numeric.to_numpy(float)
    except ImportError:
        pass
    out = {}
    for name, X in tables.items():
        X = np.asarray(X, dtype=np.float64)
        std = X.std(axis=0)
        X = X[:, std > 0]
        out[name] = (X - X.mean(axis=0)) / X.std(axis=0)
    return out


# ---------------------------------------------------------------- methods
def make_methods(names: list[str] | None):
    """``{name: factory(seed)}`` of every method that is available here."""
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
    from sklearn.linear_model import BayesianRidge

    import sklearn_mc

    methods = {
        "sk:mean": lambda s: SimpleImputer(),
        "sk:KNN": lambda s: KNNImputer(),
        "sk:II(BayesianRidge)": lambda s: IterativeImputer(
            BayesianRidge(), max_iter=10, random_state=s
        ),
        "sk:II(ExtraTrees)": lambda s: IterativeImputer(
            ExtraTreesRegressor(n_estimators=50, n_jobs=1, random_state=s),
            max_iter=5,
            random_state=s,
        ),
    }
    for cls_name in SK_MC:
        if hasattr(sklearn_mc, cls_name):
            cls = getattr(sklearn_mc, cls_name)
            methods[cls_name] = lambda s, cls=cls: cls(device="cpu", random_state=s)
    notes = []
    try:
        import miceforest  # noqa: F401

        methods["miceforest"] = lambda s: MiceForest(s)
    except ImportError as exc:
        notes.append(f"miceforest skipped: {exc}")
    fancy, reason = fancyimpute_or_reason()
    if fancy is None:
        notes.append(reason)
    else:
        methods["fancy:SoftImpute"] = lambda s: FancyWrap(
            fancy.SoftImpute, verbose=False
        )
        methods["fancy:IterativeSVD"] = lambda s: FancyWrap(
            fancy.IterativeSVD, verbose=False
        )
    notes.append(
        "hyperimpute not installed: its requirements pull TensorFlow, Jupyter, "
        "CatBoost, XGBoost and Optuna (~80 packages) and upgrade shared packages."
    )
    if names:
        missing = [n for n in names if n not in methods]
        if missing:
            raise SystemExit(f"unknown or unavailable methods: {missing}")
        methods = {n: methods[n] for n in names}
    return methods, notes


class MiceForest:
    """miceforest 6: one imputed data set, its default LightGBM settings."""

    def __init__(self, seed):
        self.seed = seed

    def fit_transform(self, X):
        import miceforest as mf
        import pandas as pd

        frame = pd.DataFrame(X, columns=[f"c{j}" for j in range(X.shape[1])])
        kernel = mf.ImputationKernel(frame, num_datasets=1, random_state=self.seed)
        kernel.mice(iterations=5)
        return kernel.complete_data(0).to_numpy(dtype=np.float64)


class FancyWrap:
    def __init__(self, cls, **kwargs):
        self.model = cls(**kwargs)

    def fit_transform(self, X):
        return self.model.fit_transform(X)


# -------------------------------------------------------------------- run
def run(args) -> list[dict]:
    tables = load_tables()
    if args.tables:
        tables = {k: tables[k] for k in args.tables}
    methods, notes = make_methods(args.methods)
    raw_path = _common.RESULTS / args.raw[0]
    records = []
    if args.resume and raw_path.exists():
        records = json.loads(raw_path.read_text())["records"]
    done = {
        (r["table"], r["pattern"], r["rate"], r["seed"], r["method"]) for r in records
    }
    # A fit is stopped after --max-fit-s wall seconds; the method is then not
    # run on that table's later fits (recorded as skipped: the report says so).
    slow = {
        (r["table"], r["method"]): r["fit_s"]
        for r in records
        if r.get("fit_s", 0.0) >= args.max_fit_s and "skipped" not in r.get("error", "")
    }
    for pattern in args.patterns:
        for rate in args.rates:
            for seed in args.seeds:
                for table, X in tables.items():
                    hidden = make_mask(
                        X.shape,
                        pattern,
                        X=None if pattern == "random" else X,
                        missing_rate=rate,
                        random_state=1000 * seed + 7,
                    )
                    X_missing = np.where(hidden, np.nan, X)
                    for name, factory in methods.items():
                        key = (table, pattern, rate, seed, name)
                        if key in done:
                            continue
                        rec = dict(
                            zip(
                                ("table", "pattern", "rate", "seed", "method"),
                                key,
                                strict=True,
                            )
                        )
                        if (table, name) in slow:
                            rec["error"] = (
                                f"skipped: a fit on this table took "
                                f"{slow[table, name]:.0f} s > --max-fit-s "
                                f"{args.max_fit_s:.0f}"
                            )
                        else:
                            rec.update(
                                _fit_with_timeout(
                                    factory, seed, X, X_missing, hidden, args.max_fit_s
                                )
                            )
                            if rec.get("fit_s", 0.0) >= args.max_fit_s:
                                slow[table, name] = rec["fit_s"]
                        records.append(rec)
                        print(json.dumps(rec), flush=True)
                        raw_path.write_text(
                            json.dumps({"records": records, "notes": notes}, indent=0)
                        )
    return records, notes


def _fit_with_timeout(factory, seed, X, X_missing, hidden, limit) -> dict:
    """``_fit_one`` in a forked child, stopped after ``limit`` wall seconds."""
    import multiprocessing as mp

    def child(conn):
        try:
            conn.send(_fit_one(factory(seed), X, X_missing, hidden))
        except Exception as exc:  # a peer failing must not end the run
            conn.send({"error": f"{type(exc).__name__}: {exc}"[:200]})
        conn.close()

    ctx = mp.get_context("fork")
    parent, child_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child, args=(child_end,))
    start = time.perf_counter()
    proc.start()
    child_end.close()
    if parent.poll(limit):
        result = parent.recv()
    else:
        result = {
            "error": f"timeout: fit stopped after {limit:.0f} s (--max-fit-s)",
            "fit_s": time.perf_counter() - start,
        }
    proc.terminate()
    proc.join()
    return result


def _fit_one(estimator, X, X_missing, hidden) -> dict:
    """Fit ``estimator`` on ``X_missing``; its RMSE on the hidden entries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Timer() as t:
            out = estimator.fit_transform(X_missing.copy())
    out = np.asarray(out, dtype=np.float64)
    err = out[hidden] - X[hidden]
    return {
        "fit_s": t.wall,
        "cpu_s": t.cpu,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "load": os.getloadavg()[0],
    }


# ----------------------------------------------------------------- report
def report(records: list[dict], notes: list[str], *, quick: bool = False) -> str:
    keys = ("table", "pattern", "rate", "seed", "method")
    records = list({tuple(r[k] for k in keys): r for r in records}.values())
    ok = [r for r in records if "rmse" in r]
    methods = sorted({r["method"] for r in ok})
    cells = sorted({(r["table"], r["pattern"], r["rate"], r["seed"]) for r in ok})
    by = {(r["table"], r["pattern"], r["rate"], r["seed"], r["method"]): r for r in ok}
    # Ranks over every fit, of the methods that have a result on every fit
    # (a method run on part of the fits is listed, not ranked).
    complete = [m for m in methods if all(c + (m,) in by for c in cells)]
    ranked = cells
    if len(complete) < 2:  # rank on the fits that have every method instead
        complete = methods
        ranked = [c for c in cells if all(c + (m,) in by for m in complete)]
    ranks = {m: [] for m in complete}
    rank_mcar = {m: [] for m in complete}
    for c in ranked:
        vals = np.array([by[c + (m,)]["rmse"] for m in complete])
        order = vals.argsort(kind="stable").argsort() + 1.0
        for m, rk in zip(complete, order, strict=True):
            ranks[m].append(rk)
            if c[1] == "random":
                rank_mcar[m].append(rk)
    lines = [
        "# Tabular imputation benchmark",
        "",
        f"*{environment()}; shared machine, wall times are upper bounds.*",
        "",
        "RMSE on the hidden entries in column-std units (z-scored tables), mean "
        "over seeds; rank among the methods on each fit, averaged. Patterns: "
        "`random` = MCAR, `mar`, `mnar` = the HyperImpute benchmark's logistic "
        "masks (`sklearn_mc.datasets.make_mask`). Command: "
        "`OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_tabular.py`.",
        "",
    ]
    lines += [f"- {n}" for n in notes]
    lines.append(
        f"- Ranks are over the {len(ranked)} fits (of {len(cells)}) on which all "
        f"{len(complete)} ranked methods ran: "
        + ", ".join(f"{c[0]}/{c[1]}/{int(100 * c[2])}%/seed {c[3]}" for c in ranked)
        + "."
    )
    unranked = [m for m in methods if m not in complete]
    if unranked:
        lines.append(
            f"- Not ranked (run on part of the fits only): {', '.join(unranked)}."
        )
    failed = [r for r in records if "error" in r]
    for r in failed:
        lines.append(
            f"- {r['method']} failed on {r['table']} {r['pattern']} {r['rate']}: "
            f"{r['error']}"
        )
    # summary
    mean_rmse = {
        c: by[c + ("sk:mean",)]["rmse"] for c in cells if c + ("sk:mean",) in by
    }
    rows = []
    for m in methods:
        mine = [r for r in ok if r["method"] == m]
        ratio = [
            by[c + (m,)]["rmse"] / mean_rmse[c]
            for c in cells
            if c + (m,) in by and c in mean_rmse
        ]
        rows.append(
            {
                "method": m,
                "mean rank (all)": float(np.mean(ranks[m])) if m in ranks else "",
                "mean rank (MCAR)": float(np.mean(rank_mcar[m]))
                if m in rank_mcar and rank_mcar[m]
                else "",
                "mean RMSE": float(np.mean([r["rmse"] for r in mine])),
                "worst RMSE / mean-imputation RMSE": float(np.max(ratio))
                if ratio
                else "",
                "mean fit s": float(np.mean([r["fit_s"] for r in mine])),
                "mean CPU s": float(np.mean([r["cpu_s"] for r in mine]))
                if all("cpu_s" in r for r in mine)
                else "",
                "fits": len(mine),
            }
        )
    rows.sort(key=lambda r: r["mean rank (all)"] if r["mean rank (all)"] != "" else 99)
    lines += ["", "## Summary", ""]
    lines.append(markdown_table(rows, list(rows[0])))
    # per (table, pattern, rate)
    settings = sorted({(c[0], c[1], c[2]) for c in cells})
    for pattern in sorted({s[1] for s in settings}):
        for rate in sorted({s[2] for s in settings}):
            sub = [s for s in settings if s[1] == pattern and s[2] == rate]
            if not sub:
                continue
            table_rows = []
            for s in sub:
                row = {"table": s[0]}
                vals = {}
                for m in methods:
                    errs = [
                        by[c + (m,)]["rmse"]
                        for c in cells
                        if c[:3] == s and c + (m,) in by
                    ]
                    if errs:
                        vals[m] = float(np.mean(errs))
                best = min(vals.values())
                for m in methods:
                    if m in vals:
                        mark = "**" if vals[m] == best else ""
                        row[m] = f"{mark}{vals[m]:.3f}{mark}"
                if "ChainedImputer" in vals:
                    row["Chained vs best"] = (
                        f"{100 * (vals['ChainedImputer'] / best - 1):+.1f}%"
                    )
                table_rows.append(row)
            lines += ["", f"## {pattern}, {int(100 * rate)} % hidden", ""]
            lines.append(
                markdown_table(table_rows, ["table", *methods, "Chained vs best"])
            )
    lines += _full_cell_ranks(ok, methods)
    lines += _versus_mean(ok, methods)
    plot = report_path("tabular_rank", quick=quick, suffix=".png")
    plot_ranks(rows, plot)
    lines += ["", f"![mean rank per method]({plot.name})"]
    return "\n".join(lines)


def _full_cell_ranks(ok, methods) -> list[str]:
    """Mean rank of every method over the fits on which all of them ran."""
    by = {(r["table"], r["pattern"], r["rate"], r["seed"], r["method"]): r for r in ok}
    cells = sorted({k[:4] for k in by})
    common = [m for m in methods if sum(c + (m,) in by for c in cells) > 0]
    full = [c for c in cells if all(c + (m,) in by for m in common)]
    if not full:
        return []
    ranks = {m: [] for m in common}
    for c in full:
        vals = np.array([by[c + (m,)]["rmse"] for m in common])
        for m, rk in zip(
            common, vals.argsort(kind="stable").argsort() + 1, strict=True
        ):
            ranks[m].append(float(rk))
    rows = sorted(
        ({"method": m, "mean rank": float(np.mean(ranks[m]))} for m in common),
        key=lambda r: r["mean rank"],
    )
    return [
        "",
        f"## Every method that ran: mean rank over the {len(full)} fits where all "
        "of them have a result",
        "",
        ", ".join(f"{c[0]}/{c[1]}/{int(100 * c[2])}%/seed {c[3]}" for c in full),
        "",
        markdown_table(rows, ["method", "mean rank"]),
    ]


def _versus_mean(ok, methods) -> list[str]:
    """Worst RMSE / mean-imputation RMSE of each sklearn_mc method."""
    by = {(r["table"], r["pattern"], r["rate"], r["seed"], r["method"]): r for r in ok}
    rows = []
    for m in methods:
        if m not in SK_MC:
            continue
        ratios = {
            k[:4]: r["rmse"] / by[k[:4] + ("sk:mean",)]["rmse"]
            for k, r in by.items()
            if k[4] == m and k[:4] + ("sk:mean",) in by
        }
        if not ratios:
            continue
        worst = max(ratios, key=ratios.get)
        # per setting (table, pattern, rate): the ratio of the seed means
        settings = {}
        for c in ratios:
            settings.setdefault(c[:3], []).append(c)
        setting_ratio = {
            s: np.mean([by[c + (m,)]["rmse"] for c in cs])
            / np.mean([by[c + ("sk:mean",)]["rmse"] for c in cs])
            for s, cs in settings.items()
        }
        worst_setting = max(setting_ratio, key=setting_ratio.get)
        rows.append(
            {
                "method": m,
                "fits": len(ratios),
                "worst RMSE / mean RMSE (one fit)": ratios[worst],
                "on": f"{worst[0]}/{worst[1]}/{int(100 * worst[2])}%/seed {worst[3]}",
                "worst (mean over seeds)": setting_ratio[worst_setting],
                "fits worse than mean": sum(v > 1 for v in ratios.values()),
            }
        )
    if not rows:
        return []
    return [
        "",
        "## sklearn_mc methods against mean imputation",
        "",
        "RMSE of the method / RMSE of `SimpleImputer(mean)` on the same fit; "
        "above 1 is worse than the mean.",
        "",
        markdown_table(rows, list(rows[0])),
    ]


def plot_ranks(rows, path: Path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = [r for r in rows if r["mean rank (all)"] != ""]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1))
    names = [r["method"] for r in rows][::-1]
    ax.barh(names, [r["mean rank (all)"] for r in rows][::-1], color="tab:blue")
    ax.set_xlabel("mean rank (1 = best), all tables, patterns, rates, seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------- timing
def timing(n_rows: int = 20000, n_cols: int = 20) -> str:
    """Fit time of ChainedImputer vs IterativeImputer(BayesianRidge)."""
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer
    from sklearn.linear_model import BayesianRidge

    from sklearn_mc import ChainedImputer

    rng = np.random.RandomState(0)
    Z = rng.standard_normal((n_rows, 5))
    W = rng.standard_normal((5, n_cols))
    X = (
        np.tanh(Z @ W)
        + 0.2 * (Z @ W) ** 2 / 5
        + 0.1 * rng.standard_normal((n_rows, n_cols))
    )
    X = (X - X.mean(0)) / X.std(0)
    hidden = rng.random_sample(X.shape) < 0.2
    X_missing = np.where(hidden, np.nan, X)
    rows = []
    for name, est in [
        (
            "IterativeImputer(BayesianRidge)",
            IterativeImputer(BayesianRidge(), max_iter=10, random_state=0),
        ),
        ("ChainedImputer", ChainedImputer(random_state=0)),
    ]:
        with warnings.catch_warnings(), Timer() as t:
            warnings.simplefilter("ignore")
            out = est.fit_transform(X_missing)
        seconds, cpu = t.wall, t.cpu
        err = float(np.sqrt(np.mean((out[hidden] - X[hidden]) ** 2)))
        load = os.getloadavg()[0]
        rows.append(
            {
                "method": name,
                "fit s": seconds,
                "CPU s": cpu,
                "RMSE": err,
                "load average (1 min) after": load,
            }
        )
        print(rows[-1], flush=True)
    rows[1]["time ratio"] = rows[1]["fit s"] / rows[0]["fit s"]
    rows[1]["CPU ratio"] = rows[1]["CPU s"] / rows[0]["CPU s"]
    return "\n".join(
        [
            f"## Fit time on {n_rows:,} x {n_cols} (20 % MCAR, synthetic nonlinear)",
            "",
            f"*{environment()}; shared machine.*",
            "",
            "CPU seconds of the process are the fair comparison on a shared "
            "machine; wall seconds depend on the other jobs.",
            "",
            markdown_table(
                rows,
                [
                    "method",
                    "fit s",
                    "CPU s",
                    "RMSE",
                    "time ratio",
                    "CPU ratio",
                    "load average (1 min) after",
                ],
            ),
        ]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--methods", nargs="*")
    parser.add_argument("--tables", nargs="*")
    parser.add_argument("--patterns", nargs="*", default=["random", "mar", "mnar"])
    parser.add_argument("--rates", nargs="*", type=float, default=[0.2, 0.5])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    parser.add_argument(
        "--max-fit-s",
        type=float,
        default=300.0,
        help="a method whose fit on a table takes longer is skipped on that "
        "table's later fits",
    )
    parser.add_argument(
        "--raw",
        nargs="*",
        default=None,
        help="raw results files under results/ or absolute paths (a run writes "
        "the first; the report merges all); default tabular_raw.json, "
        "tabular_quick_raw.json with --quick",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    if args.timing:
        write_report("tabular_timing", timing())
        return
    if args.quick:
        args.seeds, args.rates = [0], [0.2]
    if not args.raw:
        args.raw = [report_path("tabular", quick=args.quick, suffix="_raw.json").name]
    if args.report_only:
        records, notes = [], []
        for name in args.raw:
            data = json.loads((_common.RESULTS / name).read_text())
            records += data["records"]
            notes += [n for n in data["notes"] if n not in notes]
    else:
        records, notes = run(args)
    write_report("tabular", report(records, notes, quick=args.quick), quick=args.quick)


if __name__ == "__main__":
    main()
