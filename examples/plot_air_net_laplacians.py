"""
The Laplacians AIR-Net learns
=============================

AIR-Net (Li, Xu, Zhang et al.) completes a matrix with a deep linear
factorisation regularised by two graph Laplacians — one over rows, one over
columns — that it *learns* during the fit rather than being given. The
regulariser ``tr(Xᵀ L X)`` is small when rows joined by a heavy edge of the
graph are similar, so the learned graph says which rows (columns) the model
considers alike.

Two cases show what the graphs pick up:

1. a matrix whose rows come from three groups, shuffled: the learned row
   graph recovers the groups (shown after sorting rows by group);
2. an image: the graphs join neighbouring rows (columns) and rows of similar
   content, learned from the pixels alone.

The heat maps show the learned edge weights ``A = diag(L) − L`` (the
off-diagonal of ``−L``) on a logarithmic colour scale: as training goes on,
the weights concentrate on few edges and span several decades.
"""

# %%
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from skimage import data
from skimage.transform import resize
from sklearn.exceptions import ConvergenceWarning

from sklearn_mc import AIRNetImputer
from sklearn_mc.datasets import make_mask
from sklearn_mc.metrics import nmae

QUICK = os.environ.get("SKLEARN_MC_DOCS_QUICK", "0") not in ("", "0")


def edge_weights(laplacian):
    """Adjacency ``A`` of a Laplacian ``L = diag(A 1) - A``."""
    A = -np.array(laplacian, dtype=float)
    np.fill_diagonal(A, 0.0)
    return A


def show_graph(ax, A, title):
    """Heat map of edge weights on a log scale (they span many decades)."""
    top = A.max()
    im = ax.imshow(
        np.clip(A, top * 1e-4, None),
        cmap="magma",
        norm=LogNorm(vmin=top * 1e-4, vmax=top),
        interpolation="nearest",
    )
    ax.set_title(title)
    return im


# %%
# Rows from three groups
# ----------------------
# Each group shares a profile over the columns; rows add a little noise.
rng = np.random.default_rng(0)
n_rows, n_cols, n_groups = 60, 40, 3
groups = rng.permutation(np.repeat(np.arange(n_groups), n_rows // n_groups))
profiles = rng.standard_normal((n_groups, n_cols)) * 2.0
X = profiles[groups] + 0.3 * rng.standard_normal((n_rows, n_cols))
mask = make_mask(X.shape, "random", missing_rate=0.3, random_state=0)
X_missing = np.where(mask, np.nan, X)

# A step of 1e-2 (the paper uses 1e-3 for 10,000 iterations) keeps it short;
# the iteration cap is deliberate, so its ConvergenceWarning is silenced.
warnings.filterwarnings("ignore", category=ConvergenceWarning)
air = AIRNetImputer(
    learning_rate=1e-2, max_iter=1000 if QUICK else 3000, random_state=0, device="cpu"
)
X_hat = air.fit_transform(X_missing)
print(f"groups: NMAE {nmae(X, X_hat, mask):.4f} after {air.n_iter_} iterations")

order = np.argsort(groups, kind="stable")
A_rows = edge_weights(air.laplacian_rows_)
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
show_graph(axes[0], A_rows, "learned row graph (rows as given)")
im = show_graph(axes[1], A_rows[np.ix_(order, order)], "rows sorted by group")
for ax in axes:
    ax.set_xlabel("row")
axes[0].set_ylabel("row")
fig.colorbar(im, ax=axes, shrink=0.8, label="edge weight")
plt.show()

# %%
# An image
# --------
size = 64 if QUICK else 96
image = resize(data.camera() / 255.0, (size, size), anti_aliasing=True)
mask = make_mask(image.shape, "random", missing_rate=0.3, random_state=1)
air_img = AIRNetImputer(
    learning_rate=1e-2, max_iter=1000 if QUICK else 3000, random_state=0, device="cpu"
)
completed = air_img.fit_transform(np.where(mask, np.nan, image))
error = nmae(image, completed, mask)
print(f"image: NMAE {error:.4f} after {air_img.n_iter_} iterations")

holes = plt.get_cmap("gray").with_extremes(bad="tab:red")
fig, axes = plt.subplots(1, 4, figsize=(13, 3.5))
axes[0].imshow(np.ma.masked_array(image, mask), cmap=holes, vmin=0, vmax=1)
axes[0].set_title("30 % missing (red)")
axes[1].imshow(np.clip(completed, 0, 1), cmap="gray", vmin=0, vmax=1)
axes[1].set_title(f"AIR-Net, NMAE {error:.3f}")
show_graph(axes[2], edge_weights(air_img.laplacian_rows_), "row graph (log scale)")
show_graph(axes[3], edge_weights(air_img.laplacian_cols_), "column graph (log scale)")
for ax in axes[:2]:
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %%
# The regularisers fade as the graphs sharpen
# -------------------------------------------
# ``regularizer_curve_`` holds the two normalised regulariser values per
# iteration. They grow with the completion from its tiny start, then decrease
# as the graphs concentrate their weight on the closest rows and columns:
# the regularisation adapts instead of pulling with a fixed strength.
curve = np.asarray(air_img.regularizer_curve_)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogy(curve[:, 0], label="rows: tr(Xᵀ L_r X)")
ax.semilogy(curve[:, 1], label="columns: tr(X L_c Xᵀ)")
ax.set_xlabel("iteration")
ax.set_ylabel("normalised regulariser")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
