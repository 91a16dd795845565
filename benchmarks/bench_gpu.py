"""Every imputer on a GPU and on the CPU: same inputs, agreement, time, pickling.

Run ``python benchmarks/bench_gpu.py`` on a machine with CUDA (``--device
cuda:1`` for another GPU, ``--quick`` for a small run). Without a GPU,
``--device cpu`` runs the same script with the CPU on both sides: it proves
the script and the pickling path work (the CI test does this), not the GPU.

For each exported imputer the script

1. fits ``fit_transform`` on the same matrix with the same ``random_state`` on
   the device and on the CPU and times both (``torch.cuda.synchronize`` before
   the clock stops);
2. compares the two completions: the largest absolute difference on the missing
   entries, and the RMSE of each against the ground truth. Deterministic
   methods (SVD, KNN) must agree to ``--tol`` (relative to the data's scale);
   gradient-trained ones follow different floating-point paths on a GPU
   (reductions in another order, and non-convex training amplifies the last
   bits), so for them the check is that the two held-out RMSEs agree to
   within 10 % of each other;
3. pickles the device-fitted model, loads it in a fresh process that sees no
   GPU (``CUDA_VISIBLE_DEVICES=""``) and checks that ``transform`` there gives
   the completion that the device-fitted model gives here (to ``--tol``).

Writes ``benchmarks/results/gpu.md`` (``gpu_cpu_only.md`` with ``--device
cpu``; ``gpu_quick.md`` / ``gpu_cpu_only_quick.md`` with ``--quick``, so a
quick run never replaces a full one; ``--output NAME`` writes ``NAME.md``).
Times are wall and CPU seconds of this process (``benchmarks/_common.Timer``).
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    Timer,
    command,
    environment,
    markdown_table,
    write_report,
)

from sklearn_mc._registry import all_imputers  # noqa: E402

#: Methods whose completion is a deterministic function of the data.
DETERMINISTIC = {"SVDImputer", "KNNImputer"}

#: Settings for the quick run (tiny fits) by class name; the full run uses
#: each imputer's defaults.
QUICK_PARAMS = {
    "SGDMFImputer": {"max_iter": 30},
    "DeepMFImputer": {"max_iter": 100},
    "AIRNetImputer": {"max_iter": 100},
    "MLPImputer": {"max_iter": 20},
    "DMFImputer": {"max_iter": 5},
}

_LOAD_AND_TRANSFORM = """
import pickle, sys
import numpy as np
with open(sys.argv[1], "rb") as f:
    models, X = pickle.load(f)
np.save(sys.argv[2], np.stack([model.transform(X) for model in models]))
"""


def imputer_classes() -> list[type]:
    """Every imputer class exported by sklearn_mc, in the registry's order."""
    return [cls for _, cls in all_imputers()]


def problem(n_rows: int, n_cols: int, rank: int, seed: int = 0):
    """Low rank plus a little noise, 30 % of the entries missing at random."""
    rng = np.random.RandomState(seed)
    truth = rng.randn(n_rows, rank) @ rng.randn(rank, n_cols) / np.sqrt(rank)
    truth += 0.05 * rng.randn(n_rows, n_cols)
    hidden = rng.rand(n_rows, n_cols) < 0.3
    return truth, np.where(hidden, np.nan, truth), hidden


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_fit(cls, params: dict, device: str, X: np.ndarray):
    model = cls(**params, device=device, random_state=0)
    _sync(device)
    with Timer() as timer:
        completed = model.fit_transform(X)
        _sync(device)
    return model, completed, timer


def transform_in_cpu_process(models: list, X: np.ndarray) -> np.ndarray:
    """Each ``model.transform(X)``, in one fresh Python process that sees no GPU."""
    with tempfile.TemporaryDirectory() as tmp:
        blob, out = os.path.join(tmp, "model.pkl"), os.path.join(tmp, "out.npy")
        with open(blob, "wb") as f:
            pickle.dump((models, X), f)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        subprocess.run(
            [sys.executable, "-c", _LOAD_AND_TRANSFORM, blob, out],
            check=True,
            env=env,
        )
        return np.load(out)


def compare(cls, params, device, truth, X, hidden, tol) -> dict:
    name = cls.__name__
    model, on_device, t_device = timed_fit(cls, params, device, X)
    _, on_cpu, t_cpu = timed_fit(cls, params, "cpu", X)
    scale = np.abs(truth).max()
    diff = np.abs(on_device - on_cpu)[hidden].max() / scale
    rmse_device = float(np.sqrt(np.mean((on_device - truth)[hidden] ** 2)))
    rmse_cpu = float(np.sqrt(np.mean((on_cpu - truth)[hidden] ** 2)))
    if name in DETERMINISTIC:
        agree = diff <= tol
    else:
        agree = abs(rmse_device - rmse_cpu) <= 0.1 * max(rmse_device, rmse_cpu)
    return model, {
        "imputer": name,
        "device s": t_device.wall,
        "device CPU s": t_device.cpu,
        "cpu s": t_cpu.wall,
        "cpu CPU s": t_cpu.cpu,
        "speed-up": t_cpu.wall / t_device.wall,
        "max |diff| / scale": float(diff),
        "RMSE device": rmse_device,
        "RMSE cpu": rmse_cpu,
        "agree": "yes" if agree else "NO",
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small matrix, short fits")
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--output", default=None, help="report name (no suffix)")
    args = parser.parse_args(argv)

    shape = (60, 20, 3) if args.quick else (2000, 500, 10)
    truth, X, hidden = problem(*shape)
    rows, models = [], []
    for cls in imputer_classes():
        params = QUICK_PARAMS.get(cls.__name__, {}) if args.quick else {}
        valid = cls().get_params()
        params = {k: v for k, v in params.items() if k in valid}
        model, row = compare(cls, params, args.device, truth, X, hidden, args.tol)
        models.append(model)
        rows.append(row)
        print(row, flush=True)
    loaded = transform_in_cpu_process(models, X)
    scale = np.abs(truth).max()
    for model, row, on_cpu in zip(models, rows, loaded, strict=True):
        ok = np.abs(on_cpu - model.transform(X)).max() <= args.tol * scale
        row["pickle -> CPU"] = "yes" if ok else "NO"

    device_name = (
        torch.cuda.get_device_name(torch.device(args.device))
        if args.device.startswith("cuda")
        else "CPU on both sides (no GPU)"
    )
    columns = list(rows[0])
    text = "\n".join(
        [
            f"# Every imputer on `{args.device}` and on the CPU",
            "",
            f"{shape[0]} x {shape[1]} rank {shape[2]} + noise 0.05, 30 % missing; "
            f"{'quick settings' if args.quick else 'default settings'}; "
            f"random_state=0. Device: {device_name}.",
            f"{command(argv, __file__)}. Environment: {environment()}.",
            "",
            "`agree`: deterministic methods to a relative "
            f"{args.tol:g}; gradient-trained ones: held-out RMSEs within 10 %. "
            "`pickle -> CPU`: the device-fitted model, pickled and loaded in a "
            "process that sees no GPU, transforms as it does here. `s`: wall "
            "seconds (an upper bound on a shared machine); `CPU s`: CPU seconds "
            "of this process.",
            "",
            markdown_table(rows, columns),
        ]
    )
    if args.output:
        write_report(args.output, text)
    else:
        name = "gpu" if args.device != "cpu" else "gpu_cpu_only"
        write_report(name, text, quick=args.quick)
    return rows


if __name__ == "__main__":
    main()
