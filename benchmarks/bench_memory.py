"""Peak extra memory of ``fit_transform`` for every exported imputer.

Run ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_memory.py``
(defaults: 100,000 x 50, 20 % of the entries missing completely at random,
every imputer of :func:`sklearn_mc._registry.all_imputers`). Writes
``benchmarks/results/memory_<rows>x<cols>.md`` (``--name`` to choose) and
prints the table.

Each imputer runs in a fresh Python process, one at a time. The child builds
``X`` (rank 5 plus Gaussian noise of standard deviation 0.1, float64), runs
``gc.collect()``, resets the kernel's peak-RSS counter of its own process
(``/proc/self/clear_refs``, Linux) and reads its resident memory: that is the
baseline (the interpreter, torch, scikit-learn and ``X`` itself). It then runs
``fit_transform(X)``. The parent reads the child's peak resident memory
(``VmHWM`` in ``/proc/<pid>/status``) every 0.2 s and when the fit ends, so a
fit stopped by ``--timeout`` still reports the peak it reached until then
(marked in the table). "Extra" is that peak minus the baseline; it includes
the returned completion (one X-sized array). Where ``/proc`` is missing
(not Linux), ``ru_maxrss`` before and after the fit is used instead, which
can only over-state the baseline.

Iterative methods run with ``max_iter`` capped by ``--max-iter`` (default 3):
every one of them allocates its working set in the first iteration (the same
arrays and tensors are reused in the later ones), so the peak is reached
within the cap while the run stays minutes long. KNNImputer runs with its
defaults unless ``--knn-max-donors`` sets its approximate mode; when the
exact run hits ``--timeout``, it runs again with ``max_donors=10_000`` (its
documented approximate mode, ``--knn-fallback``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _common, and sklearn_mc uninstalled

from _common import command, environment, markdown_table, write_report  # noqa: E402

MB = 1024**2


def make_problem(n_rows: int, n_cols: int, missing: float, seed: int = 0):
    """Rank-5 plus noise, ``missing`` of the entries NaN (MCAR), float64."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, 5)) @ rng.standard_normal((5, n_cols))
    X += 0.1 * rng.standard_normal((n_rows, n_cols))
    X[rng.random((n_rows, n_cols)) < missing] = np.nan
    return X


def _status_kib(pid: int | str = "self") -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of a process in KiB (empty where /proc is absent)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            lines = fh.readlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def settings(cls, max_iter: int | None, knn_max_donors: int | None) -> dict:
    """The parameters one imputer runs with in the benchmark."""
    params = cls().get_params()
    chosen = {}
    if "device" in params:
        chosen["device"] = "cpu"
    if "random_state" in params:
        chosen["random_state"] = 0
    if max_iter is not None and "max_iter" in params:
        chosen["max_iter"] = min(max_iter, params["max_iter"])
    if knn_max_donors is not None and "max_donors" in params:
        chosen["max_donors"] = knn_max_donors
    return chosen


def child(args) -> None:
    """One measurement in this (fresh) process; prints JSON lines."""
    import numpy as np
    import torch

    from sklearn_mc._registry import get_imputer

    torch.set_num_threads(args.threads)
    cls = get_imputer(args.child)
    params = json.loads(args.params)
    X = make_problem(args.rows, args.cols, args.missing)
    proc = bool(_status_kib())
    before = _status_kib().get("VmRSS", 0) * 1024
    if args.warmup:  # load lazily imported code and kernels once
        cls(**params).fit_transform(make_problem(200, args.cols, args.missing, 1))
    gc.collect()
    warm = _status_kib().get("VmRSS", 0) * 1024 - before
    est = cls(**params)
    if proc:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
        base = _status_kib()["VmRSS"] * 1024
    else:  # pragma: no cover - not Linux
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"base": base, "x_bytes": X.nbytes, "warm": warm}), flush=True)
    cpu, wall = time.process_time(), time.perf_counter()
    out = est.fit_transform(X)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if proc:
        peak = _status_kib()["VmHWM"] * 1024
    else:  # pragma: no cover
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    mask = ~np.isnan(X)
    exact = bool(np.array_equal(out[mask], X[mask]))
    print(
        json.dumps(
            {
                "peak": peak,
                "wall": wall,
                "cpu": cpu,
                "n_iter": getattr(est, "n_iter_", None),
                "observed_exact": exact,
                "finite": bool(np.isfinite(out).all()),
            }
        ),
        flush=True,
    )


def measure(name: str, params: dict, args) -> dict:
    """Run one child process and turn its report into a table row."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--params",
        json.dumps(params),
        "--rows",
        str(args.rows),
        "--cols",
        str(args.cols),
        "--missing",
        str(args.missing),
        "--threads",
        str(args.threads),
    ] + ([] if args.warmup else ["--no-warmup"])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    start, hwm, stopped = time.perf_counter(), 0, False
    while proc.poll() is None:
        hwm = max(hwm, _status_kib(proc.pid).get("VmHWM", 0) * 1024)
        if time.perf_counter() - start > args.timeout:
            proc.kill()
            stopped = True
            break
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    reports = [json.loads(line) for line in stdout.splitlines() if line[:1] == "{"]
    row = {"imputer": name, "settings": _fmt_params(params)}
    if not reports:
        row["note"] = "failed before the fit: " + _last_line(stderr)
        return row
    base, x_bytes = reports[0]["base"], reports[0]["x_bytes"]
    done = reports[1] if len(reports) > 1 else None
    peak = max(hwm, done["peak"] if done else 0)
    row.update(
        {
            "X (MB)": x_bytes / MB,
            "baseline (MB)": base / MB,
            "warm-up (MB)": reports[0]["warm"] / MB,
            "peak extra (MB)": (peak - base) / MB,
            "extra / X": (peak - base) / x_bytes,
        }
    )
    if done:
        row.update(
            {
                "wall (s)": done["wall"],
                "CPU (s)": done["cpu"],
                "n_iter_": done["n_iter"] if done["n_iter"] is not None else "",
                "note": ""
                if done["observed_exact"] and done["finite"]
                else "observed entries changed or non-finite output",
            }
        )
    elif stopped:
        row["note"] = f"stopped at {args.timeout:.0f} s (peak reached until then)"
    else:
        row["note"] = "failed during the fit: " + _last_line(stderr)
    return row


def _fmt_params(params: dict) -> str:
    shown = {k: v for k, v in params.items() if k not in ("device", "random_state")}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "defaults"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no message)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cols", type=int, default=50)
    parser.add_argument("--missing", type=float, default=0.2)
    parser.add_argument(
        "--methods",
        default="all",
        help="comma-separated method or class names (default: every imputer)",
    )
    parser.add_argument(
        "--max-iter",
        type=int,
        default=3,
        help="cap on max_iter of the iterative methods (0: their defaults)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--knn-max-donors",
        type=int,
        default=None,
        help="run KNNImputer in its approximate mode with this many donors",
    )
    parser.add_argument(
        "--knn-fallback",
        type=int,
        default=10_000,
        help="when KNNImputer's exact run hits --timeout, run it again with "
        "max_donors set to this (its documented approximate mode; 0: do not)",
    )
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the warm-up fit on 200 rows before the baseline",
    )
    parser.add_argument(
        "--before",
        default=None,
        help="the .json rows of an earlier run: add a before / after table",
    )
    parser.add_argument("--name", default=None, help="results file name")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return

    from sklearn_mc._registry import all_imputers, get_imputer

    if args.methods == "all":
        classes = [cls for _, cls in all_imputers()]
    else:
        classes = [get_imputer(m) for m in args.methods.split(",")]
    max_iter = args.max_iter or None
    rows = []
    for cls in classes:
        params = settings(cls, max_iter, args.knn_max_donors)
        row = measure(cls.__name__, params, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
        stopped = "wall (s)" not in row and "stopped" in row.get("note", "")
        if stopped and "max_donors" in cls().get_params() and args.knn_fallback:
            # the documented approximate mode, when the exact one is too slow
            params = {**params, "max_donors": args.knn_fallback}
            row = measure(cls.__name__, params, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
    columns = [
        "imputer",
        "settings",
        "X (MB)",
        "peak extra (MB)",
        "extra / X",
        "warm-up (MB)",
        "wall (s)",
        "CPU (s)",
        "n_iter_",
        "note",
    ]
    text = "\n\n".join(
        [
            f"# Peak extra memory of fit_transform, {args.rows:,} x {args.cols}, "
            f"{args.missing:.0%} missing (MCAR)",
            f"Command: {command()}. Machine (at the end of the run): "
            f"{environment()}. Wall times are upper bounds on a shared "
            "machine; CPU time is the child process's.",
            "One fresh process per imputer, one at a time, "
            f"{args.threads} thread(s). Extra = peak resident memory during "
            "fit_transform (VmHWM, reset after X is built) minus the resident "
            "memory just before it; it includes the returned completion (1x X). "
            + (
                "Before the baseline each child fits the same imputer once on a "
                "200-row matrix, so that code and kernels loaded on first use "
                "(torch's autograd, scikit-learn modules) are not counted; "
                "'warm-up' is the memory that this first fit left resident. "
                if args.warmup
                else "No warm-up fit: first-use loading of code is counted. "
            )
            + f"Iterative methods ran with max_iter capped at {max_iter} (their "
            "working set is allocated in the first iteration, so the peak is "
            "reached within the cap); settings not shown are the defaults, on "
            "the CPU, random_state=0.",
            markdown_table(rows, columns),
        ]
    )
    if args.before:
        text += "\n\n" + _comparison(rows, args.before)
    name = args.name or f"memory_{args.rows}x{args.cols}"
    path = write_report(name, text)
    # the rows, for a later run's --before
    path.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")


def _comparison(rows: list[dict], before_path: str) -> str:
    """Before / after table from an earlier run's rows (its ``.json`` file)."""
    before = {
        (r["imputer"], r["settings"]): r
        for r in json.loads(Path(before_path).read_text())
    }
    table = []
    for row in rows:
        old = before.get((row["imputer"], row["settings"]), {})
        table.append(
            {
                "imputer": row["imputer"],
                "settings": row["settings"],
                "before (MB)": old.get("peak extra (MB)", ""),
                "before / X": old.get("extra / X", ""),
                "after (MB)": row.get("peak extra (MB)", ""),
                "after / X": row.get("extra / X", ""),
                "at most 10 x X": "yes"
                if row.get("extra / X", float("inf")) <= 10
                else "no",
                "note (after)": row.get("note", ""),
            }
        )
    columns = list(table[0]) if table else []
    return f"## Before and after (before: {before_path})\n\n" + markdown_table(
        table, columns
    )


if __name__ == "__main__":
    main()
