"""The GPU benchmark script runs end to end with the CPU on both sides.

On a machine without CUDA this is the only way CI exercises
``benchmarks/bench_gpu.py``: every exported imputer is fitted twice, the
completions compared, and a fitted model pickled, loaded in a fresh process
that sees no GPU and used there.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks")


@pytest.fixture
def bench_gpu(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(BENCHMARKS)
    common = importlib.import_module("_common")
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    module = importlib.import_module("bench_gpu")
    yield module
    sys.modules.pop("bench_gpu", None)


@pytest.mark.filterwarnings("ignore")
def test_bench_gpu_runs_on_cpu(bench_gpu, tmp_path):
    rows = bench_gpu.main(["--device", "cpu", "--quick", "--output", "gpu_test"])
    assert {row["imputer"] for row in rows} == {
        cls.__name__ for cls in bench_gpu.imputer_classes()
    }
    for row in rows:
        # CPU against CPU with one seed: every method must agree exactly.
        assert row["max |diff| / scale"] == 0.0, row
        assert row["agree"] == "yes" and row["pickle -> CPU"] == "yes", row
    assert "| SVDImputer |" in (tmp_path / "gpu_test.md").read_text()
