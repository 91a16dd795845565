"""The one place that talks to torch devices, dtypes and random generators."""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator

import numpy as np
import torch
from sklearn.utils import check_random_state

#: dtype of every tensor the estimators compute with unless they say otherwise.
DEFAULT_DTYPE = torch.float64


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn the user's ``device`` parameter into a usable :class:`torch.device`.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` picks CUDA, then Apple MPS, then the CPU. Any other value is
        passed to :class:`torch.device` and must name a device that exists here.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the device string is malformed or names a device this machine lacks.
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'auto', 'cpu', "
            "'cuda', 'cuda:N' or 'mps'."
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on "
                "this machine; use device='cpu' or device='auto'."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist."
            )
    elif dev.type == "mps":
        if not _mps_available():
            raise ValueError(
                f"device={device!r} was requested but Apple MPS is not available "
                "on this machine; use device='cpu' or device='auto'."
            )
    elif dev.type != "cpu":
        raise ValueError(
            f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda', "
            "'cuda:N' or 'mps'."
        )
    return dev


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def compute_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device supports it (CPU, CUDA); float32 on MPS."""
    return torch.float32 if device.type == "mps" else DEFAULT_DTYPE


def to_tensor(
    array: np.ndarray, device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Copy a NumPy array to ``device`` (bool and integer arrays keep their kind)."""
    array = np.ascontiguousarray(array)
    if array.dtype.kind in "fc":
        return torch.as_tensor(
            array, dtype=dtype or compute_dtype(device), device=device
        )
    return torch.as_tensor(array, device=device)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Detach, move to the CPU and return a float64 (or bool/int) NumPy array."""
    out = tensor.detach().cpu()
    if out.is_floating_point():
        out = out.to(torch.float64)
    return out.numpy()


def seed_from(random_state) -> int:
    """Draw one 31-bit integer seed from a scikit-learn ``random_state``."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def make_generator(seed: int, device: torch.device | None = None) -> torch.Generator:
    """A torch generator seeded with ``seed``.

    CPU generators are used for every random draw that decides results (masks,
    shuffles), so that results on the CPU are bit-reproducible.
    """
    gen = torch.Generator(device="cpu" if device is None else device)
    gen.manual_seed(seed)
    return gen


#: The generator of the fit running in this thread (or asyncio task): every
#: random draw of a fit comes from it, never from torch's process-wide
#: generator, so that concurrent fits (joblib's threading backend, dask workers
#: with several threads) cannot interleave their draws.
_FIT_GENERATOR: contextvars.ContextVar[torch.Generator | None] = contextvars.ContextVar(
    "sklearn_mc_fit_generator", default=None
)


@contextlib.contextmanager
def fit_rng(seed: int) -> Iterator[torch.Generator]:
    """Open the fit's own generator, seeded with ``seed``, for the block.

    Inside the block :func:`fit_generator` returns it. Context variables are
    private to each thread, so fits running in parallel threads each see
    their own generator; a fit nested in another (a method fitting a helper
    estimator) gets its own and hands the outer one back on exit.
    """
    gen = make_generator(seed)
    token = _FIT_GENERATOR.set(gen)
    try:
        yield gen
    finally:
        _FIT_GENERATOR.reset(token)


def fit_generator() -> torch.Generator:
    """The CPU generator of the fit in progress (see :func:`fit_rng`).

    Raises
    ------
    RuntimeError
        Outside a fit: a random draw there would have no seed to come from.
    """
    gen = _FIT_GENERATOR.get()
    if gen is None:
        raise RuntimeError(
            "fit_generator() was called outside a fit; random draws of a fit "
            "must come from the generator the base class opens for it."
        )
    return gen


def draw_seed(generator: torch.Generator | None = None) -> int:
    """A 31-bit seed drawn from ``generator`` (default: the fit's generator).

    Used to derive independent generators (shuffles, masks, splits) from the
    fit's one stream.
    """
    gen = fit_generator() if generator is None else generator
    return int(torch.randint(0, 2**31 - 1, (1,), generator=gen))


def linear(
    n_in: int, n_out: int, generator: torch.Generator, dtype: torch.dtype | None = None
) -> torch.nn.Linear:
    """A :class:`torch.nn.Linear` with PyTorch's default initialisation drawn
    from ``generator``.

    ``torch.nn.Linear`` itself initialises from torch's process-wide
    generator; this builds the layer without initialising it and then draws
    the same distributions (Kaiming-uniform weight with ``a = sqrt(5)``,
    uniform bias in ``±1/sqrt(n_in)``), in the same order, from ``generator``.
    """
    layer = torch.nn.utils.skip_init(torch.nn.Linear, n_in, n_out, dtype=dtype)
    torch.nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(n_in) if n_in > 0 else 0.0
    torch.nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


def low_rank_svd(
    A: torch.Tensor, q: int, niter: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.svd_lowrank(A, q, niter)`` with its test matrix drawn from
    ``generator``.

    Halko, Martinsson and Tropp, "Finding structure with randomness" (2011),
    Algorithm 4.4, as ``torch.svd_lowrank`` implements it (which draws from
    torch's process-wide generator). ``A`` may be a dense or sparse COO
    matrix; returns ``U, S, V`` with ``A ≈ U diag(S) Vᵀ``.
    """
    from ._linalg import low_rank_svd as _low_rank_svd

    return _low_rank_svd(A, q, niter, generator)


@contextlib.contextmanager
def fit_context(seed: int, device: torch.device) -> Iterator[None]:
    """Everything a fit needs around it: its own generator and flushed denormals.

    The fit's generator (seeded with ``seed``) is :func:`fit_generator`; torch's
    process-wide generator is neither seeded nor drawn from.

    Tiny initialisations (deep factorisations start near zero) make CPU
    arithmetic hit denormal floats, which is several times slower; flushing
    them to zero is numerically harmless here and is undone on exit.
    """
    was_flushing = flush_denormal_enabled()
    supported = torch.set_flush_denormal(True)
    try:
        with fit_rng(seed):
            yield
    finally:
        # set_flush_denormal returns whether the CPU supports it, not the old
        # value: put back the caller's own setting.
        if supported and not was_flushing:
            torch.set_flush_denormal(False)


def flush_denormal_enabled() -> bool:
    """Whether torch flushes denormal floats to zero now (torch has no getter).

    A denormal float64 times 1.0 is 0 exactly when flushing is on.
    """
    tiny = torch.tensor([1e-310], dtype=torch.float64)
    return bool((tiny * 1.0)[0] == 0)
