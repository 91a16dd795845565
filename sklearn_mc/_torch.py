"""The one place that talks to torch devices, dtypes and random generators."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def torch_seed(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG inside the block and restore it afterwards.

    Module constructors (``torch.nn.Linear``) draw from the global generator;
    forking keeps a fit from disturbing the user's own torch random stream.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def fit_context(seed: int, device: torch.device) -> Iterator[None]:
    """Everything a fit needs around it: a seeded RNG and flushed denormals.

    Tiny initialisations (deep factorisations start near zero) make CPU
    arithmetic hit denormal floats, which is several times slower; flushing
    them to zero is numerically harmless here and is undone on exit.
    """
    previous = torch.set_flush_denormal(True)
    try:
        with torch_seed(seed, device):
            yield
    finally:
        # set_flush_denormal returns whether the CPU supports it, not the old
        # value; denormals are on by default, so switch them back on.
        if previous:
            torch.set_flush_denormal(False)
