"""
DMF on unseen users and items
=============================

A recommender meets new users and new items every day, and refitting a model
for each of them is costly. ``DMFImputer`` (two-branch deep matrix
factorisation, Nguyen, Tsiligianni & Deligiannis) encodes a *user* from the
vector of their ratings and an *item* from the vector of its ratings, and
predicts a rating as the cosine of the two codes. Because its inputs are
rating vectors, the fitted networks encode users and items they never saw
— the four areas of the paper's Fig. 2:

* **I** seen users x seen items (``fit_transform``),
* **II** new users x seen items (``transform``, or ``complete(X_new_rows=...)``),
* **III** seen users x new items (``complete(X_new_cols=...)``),
* **IV** new users x new items (``complete`` with both).

The ratings here are synthetic (``make_ratings``: a low-rank taste model
rounded to 1–5 stars, with popularity-skewed missingness), so the true rating
of every unobserved pair is known and each area can be scored. With
``levels=[1, 2, 3, 4, 5]`` (DMF-D) every prediction is a whole star.
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from sklearn_mc import DMFImputer
from sklearn_mc.datasets import make_ratings
from sklearn_mc.metrics import rmse

QUICK = os.environ.get("SKLEARN_MC_DOCS_QUICK", "0") not in ("", "0")
n_users, n_items = (300, 150) if QUICK else (600, 300)
X, X_true = make_ratings(
    n_users, n_items, rank=5, density=0.15, random_state=0, return_truth=True
)
# The last 20 % of users and items play the new ones.
u, i = int(0.8 * n_users), int(0.8 * n_items)
areas = {
    "I: seen x seen": (slice(None, u), slice(None, i)),
    "II: new users": (slice(u, None), slice(None, i)),
    "III: new items": (slice(None, u), slice(i, None)),
    "IV: new x new": (slice(u, None), slice(i, None)),
}
print(f"{n_users} users x {n_items} items, {np.mean(~np.isnan(X)):.0%} rated")

# %%
# Fit on area I only
# ------------------
# Two models with the default architecture: plain DMF (real-valued
# predictions) and DMF-D (``levels``: whole stars). Early stopping on held-out
# ratings ends training after a few dozen epochs.
models = {
    "DMF": DMFImputer(random_state=0, device="cpu"),
    "DMF-D (stars)": DMFImputer(levels=[1, 2, 3, 4, 5], random_state=0, device="cpu"),
}
predictions = {}
for label, dmf in models.items():
    completed_I = dmf.fit_transform(X[areas["I: seen x seen"]])
    new = dmf.complete(
        X_new_rows=X[areas["II: new users"]],
        X_new_cols=X[areas["III: new items"]],
        X_new_both=X[areas["IV: new x new"]],
    )
    predictions[label] = {
        "I: seen x seen": completed_I,
        "II: new users": new.new_rows,
        "III: new items": new.new_cols,
        "IV: new x new": new.new_both,
    }
    print(f"{label}: {dmf.n_iter_} epochs")

# %%
# Score every area on the ratings nobody gave
# -------------------------------------------
# A baseline predicts each item's mean training rating (the global mean for new
# items, which have no training ratings).
train = X[areas["I: seen x seen"]]
item_mean = np.nanmean(train, axis=0)
global_mean = np.nanmean(train)
errors = {label: {} for label in [*models, "item mean / global mean"]}
for name, (rows, cols) in areas.items():
    hidden = np.isnan(X[rows, cols])
    for label in models:
        errors[label][name] = rmse(X_true[rows, cols], predictions[label][name], hidden)
    base = np.broadcast_to(item_mean if cols.stop == i else global_mean, hidden.shape)
    errors["item mean / global mean"][name] = rmse(X_true[rows, cols], base, hidden)
for label, errs in errors.items():
    print(
        f"{label:>24}: "
        + "  ".join(f"{k.split(':')[0]} {v:.3f}" for k, v in errs.items())
    )
print(
    "levels of DMF-D's predictions:",
    np.unique(predictions["DMF-D (stars)"]["IV: new x new"]),
)

# %%
fig, ax = plt.subplots(figsize=(7.5, 3.8))
x = np.arange(len(areas))
width = 0.8 / len(errors)
colors = ["tab:blue", "tab:orange", "tab:grey"]
for k, (label, errs) in enumerate(errors.items()):
    ax.bar(
        x + (k - 1) * width,
        list(errs.values()),
        width=width,
        label=label,
        color=colors[k % len(colors)],
    )
ax.set_xticks(x, list(areas))
ax.set_ylim(0.6, None)
ax.set_ylabel("RMSE on unobserved ratings (stars)")
ax.set_title("Completing users and items the models never saw (fitted on area I)")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# The completed matrix, areas in place
# ------------------------------------
full = np.empty_like(X_true)
for name, (rows, cols) in areas.items():
    full[rows, cols] = predictions["DMF-D (stars)"][name]
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
stars = plt.get_cmap("viridis", 5)
for ax, M, title in [
    (axes[0], X, "observed ratings (15 %)"),
    (axes[1], full, "DMF-D completion"),
]:
    im = ax.imshow(
        M, cmap=stars, vmin=0.5, vmax=5.5, aspect="auto", interpolation="nearest"
    )
    ax.axhline(u - 0.5, color="tab:red", lw=1.5)
    ax.axvline(i - 0.5, color="tab:red", lw=1.5)
    ax.set_title(title)
    ax.set_xlabel("items")
axes[0].set_ylabel("users")
fig.colorbar(im, ax=axes, shrink=0.8, label="stars", ticks=[1, 2, 3, 4, 5])
plt.show()
