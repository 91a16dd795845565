import numpy as np
import pytest
import torch

from sklearn_mc._torch import (
    make_generator,
    resolve_device,
    seed_from,
    to_numpy,
    to_tensor,
)


def test_auto_picks_an_available_device():
    dev = resolve_device("auto")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert dev.type == expected
    else:
        assert dev.type in {"cpu", "mps"}


def test_cpu_always_resolves():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_unavailable_cuda_is_a_clear_error(name):
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["gpu0", "tpu", "cuda:x"])
def test_malformed_device_is_a_clear_error(name):
    with pytest.raises(ValueError, match="device"):
        resolve_device(name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_round_trip():
    t = to_tensor(np.arange(3.0), resolve_device("cuda"))
    assert t.is_cuda
    np.testing.assert_array_equal(to_numpy(t), np.arange(3.0))


def test_seeds_are_reproducible():
    assert seed_from(0) == seed_from(0)
    a = torch.randn(4, generator=make_generator(seed_from(1)))
    b = torch.randn(4, generator=make_generator(seed_from(1)))
    assert torch.equal(a, b)
