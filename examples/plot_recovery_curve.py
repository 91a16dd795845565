"""
Recovery of a low-rank matrix vs sampling rate
==============================================

How many entries of an ``n x n`` matrix of rank ``r`` must be observed to
recover the rest? A rank-``r`` matrix has ``r (2n - r)`` degrees of freedom,
so below that many observations no method can succeed; above it, convex and
non-convex methods recover the matrix exactly once the sampling rate is a
modest multiple of that limit. This example draws ``X = U Vᵀ`` with Gaussian
factors (the usual test problem of the matrix-completion literature, used
for instance by Arora, Cohen, Hu and Luo, "Implicit Regularization in Deep
Matrix Factorization", NeurIPS 2019), observes a growing share of its
entries at random and plots the relative error on the unobserved entries,
``‖X̂ − X‖ / ‖X‖`` over them, for sklearn_mc's factorisations and for
scikit-learn's ``KNNImputer`` and mean imputation.

A sharp drop to ~1e-6 or below is exact recovery; a method whose curve stays
flat does not use the low-rank structure. The last cell reads the curves:
where each method first recovers the matrix, and whether it stays exact at
every higher rate.
"""

# %%
import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import KNNImputer as SklearnKNN
from sklearn.impute import SimpleImputer

import sklearn_mc
from sklearn_mc import SVDImputer
from sklearn_mc.datasets import make_low_rank, make_mask
from sklearn_mc.metrics import relative_error

QUICK = os.environ.get("SKLEARN_MC_DOCS_QUICK", "0") not in ("", "0")
n, rank = (60, 3) if QUICK else (100, 5)
rates = (
    [0.1, 0.15, 0.2, 0.3, 0.45, 0.6]
    if QUICK
    else [0.08, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6]
)
X = make_low_rank(n, n, rank, random_state=0)
limit = rank * (2 * n - rank) / n**2
print(
    f"{n} x {n}, rank {rank}: {rank * (2 * n - rank)} degrees of freedom = "
    f"{limit:.1%} of the entries"
)

# %%
# The methods. ``SVDImputer`` picks its rank itself; ``SGDMFImputer`` is given
# a rank above the true one with a small penalty (its default ``rank=10``);
# ``DeepMFImputer`` has no rank at all and relies on the implicit low-rank bias
# of a deep product (capped iterations here to keep the example fast). The
# methods this installation does not export are skipped. The caps are
# deliberate, so the ConvergenceWarning each capped fit raises is silenced.
warnings.filterwarnings("ignore", category=ConvergenceWarning)
methods = {"SVDImputer": SVDImputer(random_state=0, device="cpu")}
if hasattr(sklearn_mc, "SGDMFImputer"):
    methods["SGDMFImputer"] = sklearn_mc.SGDMFImputer(
        alpha=1e-6, random_state=0, device="cpu", max_iter=300 if QUICK else 1000
    )
if hasattr(sklearn_mc, "DeepMFImputer"):
    methods["DeepMFImputer"] = sklearn_mc.DeepMFImputer(
        random_state=0, device="cpu", max_iter=1500 if QUICK else 4000
    )
methods["sklearn KNNImputer"] = SklearnKNN()
methods["mean (SimpleImputer)"] = SimpleImputer()

# %%
errors = {name: [] for name in methods}
for rate in rates:
    hidden = make_mask(X.shape, "random", missing_rate=1 - rate, random_state=1)
    X_missing = np.where(hidden, np.nan, X)
    for name, imputer in methods.items():
        start = time.perf_counter()
        X_hat = imputer.fit_transform(X_missing)
        if X_hat.shape != X.shape:  # a column with no observed entry was dropped
            errors[name].append(np.nan)
            continue
        errors[name].append(max(relative_error(X, X_hat, hidden), 1e-12))
        print(
            f"rate {rate:.2f} {name:>22}: {errors[name][-1]:.2e} "
            f"({time.perf_counter() - start:.1f} s)"
        )

# %%
# The recovery curves
# -------------------
fig, ax = plt.subplots(figsize=(7, 4.5))
for (name, errs), marker in zip(errors.items(), "osD^v<>", strict=False):
    ax.semilogy(rates, errs, marker=marker, label=name)
ax.axvline(limit, color="grey", linestyle=":", label="degrees of freedom")
ax.set_xlabel("share of observed entries")
ax.set_ylabel("relative error on the unobserved entries")
ax.set_title(f"{n} x {n} matrix of rank {rank}")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# Reading the curves
# ------------------
for name, errs in errors.items():
    exact = [e < 1e-6 for e in errs]
    if not any(exact):
        print(f"{name}: never below 1e-6 (smallest error {np.nanmin(errs):.1e})")
        continue
    first = exact.index(True)
    later = [
        f"{r:.2f}" for r, ok in zip(rates[first:], exact[first:], strict=True) if not ok
    ]
    tail = (
        "stays exact above it"
        if not later
        else f"not exact again at {', '.join(later)}"
    )
    print(f"{name}: exact from a share of {rates[first]:.2f}; {tail}")
