"""
Completing an image with every method
=====================================

A grey-scale photograph is a matrix whose rows are strongly correlated: it is
approximately low rank, and neighbouring rows and columns look alike. Here
the *cameraman* picture from scikit-image loses pixels in the three patterns
of the AIR-Net paper — pixels missing at random, two square patches, and thin
text-like strokes — and every imputer sklearn_mc exports fills them in,
side by side, as in the paper's Fig. 4. Each completion is titled with its
NMAE, the mean absolute error on the missing pixels divided by the range of
the image (the paper's measure, lower is better).

Patches are the hardest pattern: whole blocks must be guessed from the rows
and columns that cross them. Which methods manage it, and which leave a
visible block, is in the figures and in the table at the end; the last cell
names the best and the worst method for each mask from the numbers computed
here, so the text cannot drift from them.
"""

# %%
# The image and the masks
# -----------------------
# ``SKLEARN_MC_DOCS_QUICK=1`` shrinks the image (the documentation's CI build
# sets it); the full run uses a 96 x 96 picture.
import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from skimage import data
from skimage.transform import resize
from sklearn.exceptions import ConvergenceWarning

import sklearn_mc
from sklearn_mc.datasets import make_mask
from sklearn_mc.metrics import nmae

QUICK = os.environ.get("SKLEARN_MC_DOCS_QUICK", "0") not in ("", "0")
size = 64 if QUICK else 96

image = resize(data.camera() / 255.0, (size, size), anti_aliasing=True)
masks = {
    "random (30 %)": make_mask(image.shape, "random", missing_rate=0.3, random_state=0),
    "patch": make_mask(image.shape, "patch", random_state=1),
    "texture": make_mask(image.shape, "texture", random_state=2),
}
for name, mask in masks.items():
    print(f"{name}: {mask.mean():.1%} of the pixels missing")

# %%
# The imputers
# ------------
# Every imputer class the package exports but one (below), with settings that keep
# the example to a few minutes on two CPU cores (this build's run time is
# at the bottom of the page, each fit's time in the table): iteration caps for the
# gradient-trained methods (they would otherwise stop on their own criteria,
# later) and, for the deep factorisations, a step size of 1e-2 instead of the
# AIR-Net paper's 1e-3, so that a thousand or two iterations replace its ten
# thousand. Everything else is left at its default. Parameters a class does
# not have are ignored, so this cell keeps working as methods are added.
# ``ChainedImputer`` is left out: it is meant for tables of measurements and
# would fit regressors for each of the image's pixel columns, in turn, which
# takes minutes here; :ref:`sphx_glr_auto_examples_plot_tabular_pandas.py`
# shows it on a table.
LEFT_OUT = {"ChainedImputer"}
# The caps are deliberate, so the ConvergenceWarning each capped fit raises
# is silenced here.
warnings.filterwarnings("ignore", category=ConvergenceWarning)
SETTINGS = {
    "SGDMFImputer": {"max_iter": 100 if QUICK else 200},
    "DeepMFImputer": {"learning_rate": 1e-2, "max_iter": 1000 if QUICK else 2000},
    "AIRNetImputer": {"learning_rate": 1e-2, "max_iter": 1000 if QUICK else 2000},
    "MLPImputer": {"max_iter": 50 if QUICK else 300},
    "DMFImputer": {"max_iter": 15 if QUICK else 60},
}


def exported_imputers():
    """Instances of every imputer class in ``sklearn_mc.__all__``."""
    from sklearn_mc._registry import all_imputers

    order = [cls.__name__ for _, cls in all_imputers() if cls.__name__ not in LEFT_OUT]
    imputers = {}
    for name in order:
        cls = getattr(sklearn_mc, name)
        valid = cls().get_params()
        params = {"random_state": 0, "device": "cpu", **SETTINGS.get(name, {})}
        imputers[name] = cls(**{k: v for k, v in params.items() if k in valid})
    return imputers


imputers = exported_imputers()
print(", ".join(imputers))

# %%
# Completing
# ----------
results = {}
for mask_name, mask in masks.items():
    observed = np.where(mask, np.nan, image)
    for name, imputer in imputers.items():
        start = time.perf_counter()
        completed = imputer.fit_transform(observed)
        seconds = time.perf_counter() - start
        results[mask_name, name] = (completed, nmae(image, completed, mask), seconds)
        print(
            f"{mask_name:>14} {name:>15}: NMAE {results[mask_name, name][1]:.4f}"
            f" in {seconds:.1f} s"
        )

# %%
# Side by side
# ------------
# One figure per mask, so that each completion is large enough to judge;
# missing pixels are shown in red in the second panel.
holes = plt.get_cmap("gray").with_extremes(bad="tab:red")
n_panels = len(imputers) + 2
n_cols = 5
n_rows = -(-n_panels // n_cols)
for mask_name, mask in masks.items():
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(2.6 * n_cols, 3.2 * n_rows),
        squeeze=False,
        layout="constrained",
    )
    axes = axes.ravel()
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("original", fontsize=11)
    axes[1].imshow(np.ma.masked_array(image, mask), cmap=holes, vmin=0, vmax=1)
    axes[1].set_title(f"{mask_name}", fontsize=11)
    for ax, name in zip(axes[2:], imputers, strict=False):
        completed, error, _ = results[mask_name, name]
        ax.imshow(np.clip(completed, 0, 1), cmap="gray", vmin=0, vmax=1)
        label = name.removesuffix("Imputer")
        ax.set_title(f"{label}\nNMAE {error:.3f}", fontsize=11)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(f"mask: {mask_name}", fontsize=12)
plt.show()

# %%
# The errors in one table
# -----------------------
# Rows are the methods, columns the masks; times are the fit times on this
# build's machine.
header = "method".ljust(16) + "".join(f"{m:>16}" for m in masks)
print(header)
for name in imputers:
    cells = "".join(
        f"{results[m, name][1]:>9.4f} ({results[m, name][2]:4.1f}s)" for m in masks
    )
    print(name.ljust(16) + cells)

# %%
# Best and worst, per mask
# ------------------------
# Read from the table above (lowest and highest NMAE); whether a method
# leaves a visible block on the patches is seen in the figures. The ranking
# depends on the image size and the iteration caps: the full-size benchmark
# (:doc:`../bench_results/air_net`) runs every method at its defaults.
for m in masks:
    ranked = sorted(imputers, key=lambda name: results[m, name][1])
    best, worst = ranked[0], ranked[-1]
    print(
        f"{m}: best {best} (NMAE {results[m, best][1]:.4f}), "
        f"worst {worst} (NMAE {results[m, worst][1]:.4f})"
    )
