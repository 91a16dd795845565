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
#: key of the stored file that names the machine which wrote it
FINGERPRINT_KEY = "_machine"
#: between machines whose CPUs pick different BLAS / oneDNN kernels (AVX2 vs
#: AVX-512, say) the same code rounds differently; the outputs must then
#: agree to this (relative and absolute), not bit for bit
OTHER_MACHINE_TOL = 1e-6


def machine_fingerprint() -> str:
    """The CPU features that choose the numerical kernels, as one string.

    Golden outputs are bit-reproducible on one machine, not across CPU
    generations: numpy's and torch's kernels are picked by the CPU's vector
    extensions. The test is strict (1e-12) on a machine with the same
    fingerprint as the one that wrote the file, and uses
    :data:`OTHER_MACHINE_TOL` elsewhere.
    """
    import platform

    import torch
    from numpy._core._multiarray_umath import __cpu_features__

    features = ",".join(sorted(k for k, on in __cpu_features__.items() if on))
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{platform.machine()}|{capability}|{features}"


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
    same_machine = (
        FINGERPRINT_KEY in stored.files
        and str(stored[FINGERPRINT_KEY]) == machine_fingerprint()
    )
    tol = 1e-12 if same_machine else OTHER_MACHINE_TOL
    np.testing.assert_allclose(got, stored[key], rtol=tol, atol=tol)


if __name__ == "__main__":
    np.savez(
        GOLDEN_PATH,
        **compute_outputs(),
        **{FINGERPRINT_KEY: np.array(machine_fingerprint())},
    )
    print(f"wrote {GOLDEN_PATH}")
