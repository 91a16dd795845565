"""The discrete variant DMF-D: its smooth quantiser.

Nguyen, Tsiligianni and Deligiannis, "Matrix Factorization via Deep Learning":
DMF-D passes the cosine through a smooth quantiser onto the known levels
(:class:`_Quantiser`, the paper's eq. 4).
"""

from __future__ import annotations

import numpy as np
import torch

from ._torch import compute_dtype, to_tensor


class _Quantiser:
    """The smooth quantiser G_{λ,b} of DMF-D (paper's eq. 4), in scaled units.

    On ``[I_v, I_{v+1})`` (the first piece extends to -inf, the last to +inf)
    ``G(x) = I_v + Δ_v σ(λ (x - b_v))``: a step from one level to the next
    centred at the learned boundary ``b_v``, which tends to the hard quantiser
    as λ grows.
    """

    def __init__(self, levels, slope, anneal_iter, device, dtype=None):
        dtype = compute_dtype(device) if dtype is None else dtype
        self.levels_np = np.asarray(levels, dtype=np.float64)
        self.levels = to_tensor(self.levels_np, device, dtype)
        self.inner = self.levels[1:-1].contiguous()
        self.steps = self.levels[1:] - self.levels[:-1]
        uniform = (self.levels[1:] + self.levels[:-1]) / 2
        self.uniform = uniform
        self.boundaries = uniform.clone().requires_grad_(True)
        spacing = float(self.steps.mean())
        self.start, self.end = slope[0] / spacing, slope[1] / spacing
        self.anneal_epochs = anneal_iter
        self.slope = self.start

    def anneal(self, epoch):
        frac = min(1.0, epoch / self.anneal_epochs)
        self.slope = self.start * (self.end / self.start) ** frac

    def status(self):
        return {"rounding slope": f"{self.slope:.3g}"}

    def smooth(self, x):
        piece = torch.bucketize(x.detach(), self.inner, right=True)
        centre = self.boundaries[piece]
        return self.levels[piece] + self.steps[piece] * torch.sigmoid(
            self.slope * (x - centre)
        )

    def hard(self, x):
        b = torch.sort(self.boundaries.detach()).values
        return self.levels[torch.bucketize(x, b, right=True)]

    def penalty(self):
        return ((self.boundaries - self.uniform) ** 2).sum()
