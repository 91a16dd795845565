"""Golden outputs: each imputer's ``fit_transform`` on fixed small inputs.

The stored completions (``tests/golden_outputs.npz``) pin the numbers, so a
refactor that is meant to move no number proves it. A change that is meant to
move them (a new default, a new seeding rule) regenerates the file with
``python tests/test_golden.py`` and says so in its commit message, with the
benchmark figures before and after.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from conftest import all_imputer_classes, make_fast  # noqa: E402

GOLDEN_PATH = os.path.join(os.path.dirname(__file__), "golden_outputs.npz")


def golden_inputs() -> dict[str, np.ndarray]:
    """Small fixed inputs: exactly low rank, and noisy with an offset."""
    rng = np.random.RandomState(12345)
    low_rank = rng.randn(14, 2) @ rng.randn(2, 7)
    low_rank[rng.rand(*low_rank.shape) < 0.25] = np.nan
    noisy = 3.0 + rng.randn(16, 3) @ rng.randn(3, 6) + 0.3 * rng.randn(16, 6)
    noisy[rng.rand(*noisy.shape) < 0.3] = np.nan
    return {"low_rank": low_rank, "noisy": noisy}


def compute_outputs() -> dict[str, np.ndarray]:
    outputs = {}
    for cls in all_imputer_classes():
        for name, X in golden_inputs().items():
            outputs[f"{cls.__name__}/{name}"] = make_fast(cls).fit_transform(X)
    return outputs


CASES = [
    (cls, name) for cls in all_imputer_classes() for name in sorted(golden_inputs())
]


@pytest.mark.parametrize(
    "cls, name", CASES, ids=[f"{c.__name__}-{n}" for c, n in CASES]
)
def test_fit_transform_matches_golden_output(cls, name):
    stored = np.load(GOLDEN_PATH)
    key = f"{cls.__name__}/{name}"
    assert key in stored.files, (
        f"no golden output for {key}: run `python tests/test_golden.py`"
    )
    got = make_fast(cls).fit_transform(golden_inputs()[name])
    np.testing.assert_allclose(got, stored[key], rtol=1e-12, atol=1e-12)


if __name__ == "__main__":
    np.savez(GOLDEN_PATH, **compute_outputs())
    print(f"wrote {GOLDEN_PATH}")
