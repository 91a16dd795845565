"""AIRNetImputer: the paper's Table 1 layout on Cameraman, Syn-Netflix-like data.

Run ``python benchmarks/bench_air_net.py`` (``--quick`` for a small run,
``--part images`` or ``--part community`` for one part). Writes
``benchmarks/results/air_net.md`` (tables; every file gets a ``_quick``
suffix for ``--quick``), ``air_net.png`` (a figure like the
paper's Fig. 4: observed image and every method's completion, per mask) and
``air_net_curve.png`` (NMAE vs iteration of AIR-Net and of deep MF without
early stopping, like the paper's Fig. 3), and prints the tables. Each part
also stores its numbers in ``air_net_<part>.json`` so that the parts can be
run separately; the markdown file and the curve figure are rebuilt from
whatever parts exist.

Part 1, Table 1 layout: scikit-image's Cameraman resized to 240 x 240 and
scaled to [0, 1] (the paper's images are 240 x 240 grey levels; its Table 1
reports Barbara, which scikit-image does not ship). Masks from
``sklearn_mc.datasets.make_mask``: random 30 %, patch (two blocks, ≈3.6 %)
and texture (pen strokes, ≈9.5 %). NMAE on the missing pixels for
scikit-learn's KNNImputer and every sklearn_mc imputer at its defaults.

Part 2: Syn-Netflix-like matrices, 150 x 200, rows and columns each in ten
random groups, an entry set by its pair of groups (rank 10), 80 % missing;
and a variant with 8 groups plus a rank-2 part that varies inside the
groups, 75 % missing. AIR-Net vs deep MF (with and without early stopping)
and the other imputers.

Full runs use every imputer's defaults (AIR-Net: Adam, learning rate 1e-3,
10,000 iterations, as the authors). The AIR-Net regularisers fade on a time
scale of about ``1 / learning_rate`` iterations, so the quick run (96 x 96,
2,000 iterations) uses learning rate 5e-3 for AIR-Net and deep MF to keep
the same schedule.

Timings were taken on a shared machine (2 cores, several jobs at once) with
one torch thread per fit.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

import sklearn_mc
from sklearn_mc import AIRNetImputer, DeepMFImputer
from sklearn_mc._base import BaseMatrixImputer
from sklearn_mc.datasets import make_mask
from sklearn_mc.metrics import nmae

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    Timer,
    command,
    environment,
    markdown_table,
    report_path,
    write_report,
)

PAPER_BARBARA = {
    "KNN": (0.083, 0.1563, 0.0712),
    "SVD": (0.0621, 0.2324, 0.1331),
    "DMF": (0.0613, 0.7664, 0.3885),
    "AIR-Net": (0.0471, 0.1195, 0.0692),
}
MASKS = ("random", "patch", "texture")


def cameraman(size: int) -> np.ndarray:
    from skimage import data, transform

    img = data.camera().astype(np.float64) / 255.0
    return transform.resize(img, (size, size), anti_aliasing=True)


def community_matrix(n_rows=150, n_cols=200, n_groups=10, within=0.0, seed=0):
    """Rows and columns in groups; an entry depends on its pair of groups.

    ``within > 0`` adds a rank-2 part that varies inside the groups.
    """
    rng = np.random.RandomState(seed)
    row_group = rng.randint(n_groups, size=n_rows)
    col_group = rng.randint(n_groups, size=n_cols)
    X = rng.randn(n_groups, n_groups)[row_group][:, col_group]
    if within:
        X = X + within * rng.randn(n_rows, 2) @ rng.randn(2, n_cols)
    return X


class Curve:
    """Mixin recording NMAE on the hidden entries every ``_monitor_interval``."""

    _monitor_interval = 100

    def _monitor(self, n_iter, completion):
        X = completion.cpu().numpy() * self._scale_factor + self._scale_shift
        self.curve_.append((n_iter, nmae(self.truth_, X, self.hidden_)))


def with_curve(cls, truth, hidden, **params):
    est = type(cls.__name__, (Curve, cls), {})(**params)
    est.truth_, est.hidden_, est.curve_ = truth, hidden, []
    return est


#: names of the imputers to run (None: all); set by ``--methods``.
ONLY: list[str] | None = None
#: image masks to run (None: all); set by ``--masks``.
KINDS: list[str] | None = None


def peers(max_iter, learning_rate, seed=0):
    """Every imputer of the comparison, at its defaults (iteration cap aside)."""
    from sklearn.impute import KNNImputer

    out = (
        {} if ONLY and "KNN (sklearn)" not in ONLY else {"KNN (sklearn)": KNNImputer()}
    )
    for name in sklearn_mc.__all__:
        cls = getattr(sklearn_mc, name)
        if not (inspect.isclass(cls) and issubclass(cls, BaseMatrixImputer)):
            continue
        if ONLY and name not in ONLY:
            continue
        params = {"random_state": seed, "device": "cpu"}
        if cls in (AIRNetImputer, DeepMFImputer):
            params.update(max_iter=max_iter, learning_rate=learning_rate)
        out[name] = cls(**params)
    return out


def run(est, X_missing):
    with Timer() as t, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = est.fit_transform(X_missing)
    return out, t.wall


def evaluate(X, mask, ests, label):
    """Fit every estimator on X with ``mask`` hidden; NMAE, time, curves."""
    X_missing = np.where(mask, np.nan, X)
    results, completions, curves = {}, {}, {}
    for name, est in ests.items():
        try:
            out, seconds = run(est, X_missing)
        except Exception as exc:  # a peer failing must not sink the table
            print(f"{label} {name}: failed ({exc})", flush=True)
            continue
        n_iter = int(getattr(est, "n_iter_", 0))
        results[name] = (nmae(X, out, mask), seconds, n_iter)
        completions[name] = out
        if getattr(est, "curve_", None):
            curves[name] = est.curve_
        print(
            f"{label:10s} {name:34s} NMAE {results[name][0]:.4f} {seconds:7.1f} s"
            f" ({n_iter} iterations)",
            flush=True,
        )
    return X_missing, results, completions, curves


def with_curves(ests, truth, mask, max_iter, learning_rate, seed):
    """Track AIR-Net's NMAE and add deep MF without early stopping (Fig. 3)."""
    ests["AIRNetImputer"] = with_curve(
        AIRNetImputer, truth, mask, **ests["AIRNetImputer"].get_params()
    )
    ests["DeepMFImputer (no early stopping)"] = with_curve(
        DeepMFImputer,
        truth,
        mask,
        early_stopping=False,
        max_iter=max_iter,
        learning_rate=learning_rate,
        random_state=seed,
        device="cpu",
    )
    return ests


def part_images(size, max_iter, learning_rate, quick=False, seed=0):
    img = cameraman(size)
    out = {"size": size, "results": {}, "curves": {}}
    observed, completions = {}, {}
    for kind in KINDS or MASKS:
        mask = make_mask(img.shape, kind, random_state=seed)
        ests = peers(max_iter, learning_rate, seed)
        if kind == "random":
            ests = with_curves(ests, img, mask, max_iter, learning_rate, seed)
        observed[kind], results, completions[kind], curves = evaluate(
            img, mask, ests, kind
        )
        for name, value in results.items():
            out["results"].setdefault(name, {})[kind] = value
        out["curves"].update(curves)
    plot_completions(
        img, observed, completions, report_path("air_net", quick=quick, suffix=".png")
    )
    return out


def part_community(max_iter, learning_rate, seed=0):
    out = {"results": {}, "curves": {}}
    variants = {
        "10 groups, 80 % missing": (community_matrix(seed=seed), 0.8),
        "8 groups + within-group rank 2, 75 % missing": (
            community_matrix(n_groups=8, within=0.2, seed=seed),
            0.75,
        ),
    }
    for label, (X, rate) in variants.items():
        mask = make_mask(X.shape, "random", missing_rate=rate, random_state=seed + 1)
        ests = peers(max_iter, learning_rate, seed)
        ests = with_curves(ests, X, mask, max_iter, learning_rate, seed)
        _, results, _, curves = evaluate(X, mask, ests, "community")
        out["results"][label] = results
        out["curves"][label] = curves
    return out


def image_section(part):
    rows = []
    for name, per_mask in part["results"].items():
        cells = [f"{per_mask[k][0]:.4f}" if k in per_mask else "–" for k in MASKS]
        times = [f"{per_mask[k][1]:.0f}" if k in per_mask else "–" for k in MASKS]
        rows.append([name, *cells, " / ".join(times)])
    for name, vals in PAPER_BARBARA.items():
        rows.append([f"paper (Barbara): {name}", *[f"{v:.4f}" for v in vals], ""])
    size = part["size"]
    return [
        f"## Table 1 layout: Cameraman {size} x {size}, NMAE on the missing pixels",
        "",
        part["setting"],
        "",
        *([f"Run: {part['run']}", ""] if "run" in part else []),
        markdown_table(
            rows, ["method", "random 30 %", "patch", "texture", "fit time (s)"]
        ),
        "",
    ]


def community_section(part):
    labels = list(part["results"])
    names = list(dict.fromkeys(n for lab in labels for n in part["results"][lab]))
    rows = []
    for name in names:
        cells = []
        for lab in labels:
            value = part["results"][lab].get(name)
            cells.append("–" if value is None else f"{value[0]:.4f} ({value[1]:.0f} s)")
        rows.append([name, *cells])
    return [
        "## Syn-Netflix-like community matrices, 150 x 200, NMAE (fit time)",
        "",
        part["setting"],
        "",
        *([f"Run: {part['run']}", ""] if "run" in part else []),
        markdown_table(rows, ["method", *labels]),
        "",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run")
    parser.add_argument("--part", choices=["all", "images", "community"], default="all")
    parser.add_argument(
        "--methods",
        nargs="*",
        default=None,
        metavar="NAME",
        help="run only these imputers (class names, or 'KNN (sklearn)')",
    )
    parser.add_argument("--masks", nargs="*", default=None, choices=MASKS)
    args = parser.parse_args(argv)
    global ONLY, KINDS
    ONLY, KINDS = args.methods, args.masks
    torch.set_num_threads(1)
    size, max_iter, lr = (96, 2000, 5e-3) if args.quick else (240, 10000, 1e-3)
    setting = (
        f"Every imputer at its defaults; AIR-Net and deep MF: Adam, learning rate "
        f"{lr:g}, at most {max_iter} iterations. Shared 2-core machine, one "
        "torch thread per fit, wall-clock times."
        + (" Quick run." if args.quick else "")
    )
    try:
        import fancyimpute  # noqa: F401
    except ImportError as exc:
        print(f"fancyimpute skipped: {exc}")
    quick = args.quick  # a quick run gets its own files (never the full run's)
    parts = {"images": lambda: part_images(size, max_iter, lr, quick)}
    parts["community"] = lambda: part_community(max_iter, lr)
    stored_path = {
        name: report_path(f"air_net_{name}", quick=quick, suffix=".json")
        for name in parts
    }
    for name, fn in parts.items():
        if args.part in ("all", name):
            result = fn()
            result["setting"] = setting
            result["run"] = f"{command(argv)}; {environment()}"
            stored_path[name].write_text(json.dumps(result))
    stored = {
        name: json.loads(path.read_text())
        for name, path in stored_path.items()
        if path.exists()
    }
    lines = ["# AIRNetImputer benchmark", ""]
    if "images" in stored:
        lines += image_section(stored["images"])
    if "community" in stored:
        lines += community_section(stored["community"])
    write_report("air_net", "\n".join(lines), quick=quick)
    plot_curves(stored, report_path("air_net_curve", quick=quick, suffix=".png"))


def plot_completions(img, observed, completions, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(completions)
    names = [n for n in completions[kinds[0]] if "no early" not in n]
    n_cols = len(names) + 2
    fig, axes = plt.subplots(
        len(kinds), n_cols, figsize=(1.6 * n_cols, 1.8 * len(kinds)), squeeze=False
    )
    for r, kind in enumerate(kinds):
        panels = [("truth", img), ("observed", observed[kind])]
        panels += [(n, completions[kind].get(n)) for n in names]
        for c, (title, pic) in enumerate(panels):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if pic is None:
                continue
            ax.imshow(np.nan_to_num(pic, nan=1.0), cmap="gray", vmin=0, vmax=1)
            if r == 0:
                ax.set_title(title.replace("Imputer", ""), fontsize=7)
        axes[r, 0].set_ylabel(kind, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(stored, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    if "images" in stored:
        panels.append(("Cameraman, random 30 %", stored["images"]["curves"]))
    if "community" in stored:
        for label, curves in stored["community"]["curves"].items():
            panels.append((label, curves))
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for ax, (title, curves) in zip(np.atleast_1d(axes), panels, strict=True):
        for name, curve in curves.items():
            it, err = zip(*curve, strict=True)
            ax.plot(it, err, label=name.replace("Imputer", ""))
        ax.set_xlabel("iteration")
        ax.set_ylabel("NMAE (missing entries)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
