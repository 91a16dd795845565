"""Rerun the benchmarks and stamp their results for the documentation.

Usage (from the repository root)::

    python docs/update_benchmarks.py                 # all bench_*.py, --quick
    python docs/update_benchmarks.py --only svd,knn  # bench_svd.py and bench_knn.py
    python docs/update_benchmarks.py --full          # without --quick (slow)
    python docs/update_benchmarks.py --list          # what would run

Each script runs in its own process (``python benchmarks/bench_<topic>.py
--quick``) and writes its tables to ``benchmarks/results/``. For every result
file a script wrote or changed, this writes ``<name>.meta.json`` beside it:
date, command, elapsed time, machine (OS, CPU, cores, GPU) and the versions of
sklearn_mc, torch, scikit-learn, NumPy, SciPy, pandas and Python. The Sphinx
build (``docs/conf.py``) shows that stamp at the top of each benchmark page.
The exit status is non-zero when any benchmark failed; the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"


def machine() -> str:
    """A one-line description of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = cores or os.cpu_count()
    text = f"{platform.system()} {platform.machine()}, {cpu}, {cores} cores"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
    except Exception:  # torch missing or broken: still stamp the rest
        pass
    return text


def versions() -> dict[str, str]:
    """Versions of the packages the results depend on."""
    out = {}
    for name in ("sklearn_mc", "torch", "scikit-learn", "numpy", "scipy", "pandas"):
        try:
            from importlib.metadata import version

            out[name] = version(name)
        except Exception:
            out[name] = "not installed"
    out["python"] = platform.python_version()
    return out


def snapshot() -> dict[Path, float]:
    """Modification times of the result files."""
    if not RESULTS.is_dir():
        return {}
    return {p: p.stat().st_mtime for p in RESULTS.iterdir() if p.is_file()}


def run_one(script: Path, full: bool, timeout: float | None) -> tuple[bool, float]:
    """Run one benchmark script; stamp what it wrote. Returns (ok, seconds)."""
    cmd = [sys.executable, str(script.relative_to(ROOT))]
    if not full:
        cmd.append("--quick")
    shown = " ".join(["python", *cmd[1:]])
    print(f"== {shown}", flush=True)
    before = snapshot()
    start = time.perf_counter()
    try:
        result = subprocess.run(cmd, cwd=ROOT, timeout=timeout)
        ok = result.returncode == 0
    except subprocess.TimeoutExpired:
        print(f"!! {script.name}: timed out after {timeout} s", flush=True)
        ok = False
    elapsed = time.perf_counter() - start
    stamp = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shown,
        "elapsed_s": round(elapsed, 1),
        "machine": machine(),
        "versions": versions(),
        "exit_status": "ok" if ok else "failed",
    }
    after = snapshot()
    written = [
        p for p, mtime in after.items() if p.suffix == ".md" and before.get(p) != mtime
    ]
    for md in sorted(written):
        md.with_suffix(".meta.json").write_text(
            json.dumps(stamp, indent=2) + "\n", encoding="utf-8"
        )
        print(f"   stamped {md.relative_to(ROOT)}", flush=True)
    if not written:
        print(f"   {script.name} wrote no results/*.md", flush=True)
    return ok, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="run without --quick")
    parser.add_argument(
        "--only", default=None, help="comma-separated topics (bench_<topic>.py)"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per script (default: none)"
    )
    parser.add_argument("--list", action="store_true", help="list and exit")
    args = parser.parse_args(argv)

    scripts = sorted(BENCH.glob("bench_*.py"))
    if args.only:
        wanted = {t.strip() for t in args.only.split(",") if t.strip()}
        unknown = wanted - {s.stem.removeprefix("bench_") for s in scripts}
        if unknown:
            missing = ", ".join(sorted(unknown))
            parser.error(f"no benchmarks/bench_<topic>.py for: {missing}")
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    if args.list or not scripts:
        for s in scripts:
            print(s.relative_to(ROOT))
        if not scripts:
            print("no benchmarks/bench_*.py found")
        return 0
    failed, total = [], time.perf_counter()
    for script in scripts:
        ok, _ = run_one(script, args.full, args.timeout)
        if not ok:
            failed.append(script.name)
    print(f"== done in {time.perf_counter() - total:.0f} s", flush=True)
    if failed:
        print(f"!! failed: {', '.join(failed)}", flush=True)
        return 1
    print("now rebuild the docs: python -m sphinx -W -b html docs docs/_build/html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
