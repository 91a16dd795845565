import numpy as np
import pytest
import torch

from sklearn_mc._torch import (
    linear,
    low_rank_svd,
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


@pytest.mark.requires_cuda
def test_cuda_round_trip():
    t = to_tensor(np.arange(3.0), resolve_device("cuda"))
    assert t.is_cuda
    np.testing.assert_array_equal(to_numpy(t), np.arange(3.0))


def test_seeds_are_reproducible():
    assert seed_from(0) == seed_from(0)
    a = torch.randn(4, generator=make_generator(seed_from(1)))
    b = torch.randn(4, generator=make_generator(seed_from(1)))
    assert torch.equal(a, b)


def test_linear_draws_torch_default_init_from_the_generator():
    torch.manual_seed(3)
    reference = torch.nn.Linear(7, 4, dtype=torch.float64)
    state = torch.get_rng_state()
    layer = linear(7, 4, make_generator(3), dtype=torch.float64)
    assert torch.equal(torch.get_rng_state(), state)  # global stream untouched
    assert torch.equal(layer.weight, reference.weight)
    assert torch.equal(layer.bias, reference.bias)


@pytest.mark.parametrize("shape", [(30, 12), (12, 30)])
@pytest.mark.parametrize("sparse", [False, True])
def test_low_rank_svd_is_svd_lowrank_on_a_generator(shape, sparse):
    A = torch.randn(*shape, dtype=torch.float64, generator=make_generator(1))
    if sparse:
        A = A.to_sparse().coalesce()
    torch.manual_seed(5)
    reference = torch.svd_lowrank(A, q=6, niter=4)
    state = torch.get_rng_state()
    got = low_rank_svd(A, 6, 4, make_generator(5))
    assert torch.equal(torch.get_rng_state(), state)
    for a, b in zip(got, reference, strict=True):
        assert torch.equal(a, b)
