"""
Imputation inside a classification pipeline, tuned by GridSearchCV
==================================================================

When missing values sit in the features of a supervised problem, the
imputer is one more step of the model, and its choice and settings are
hyper-parameters. Here a quarter of the entries of scikit-learn's breast
cancer table (569 tumours, 30 measurements) are removed at random, and a
``Pipeline`` — imputer, scaler, logistic regression — is tuned by
``GridSearchCV`` over *which* imputer to use and its parameters. In each
split scikit-learn calls the imputer's ``fit_transform`` on the training
fold and ``transform`` on the test fold, so no test row informs the
imputation.

A second search tunes the imputer alone: without a supervised target,
``GridSearchCV`` uses the imputer's own ``score`` — minus the RMSE on a fixed
tenth of the observed entries of the test rows, hidden and predicted.
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.impute import KNNImputer as SklearnKNN
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_mc import SVDImputer
from sklearn_mc.datasets import make_mask

QUICK = os.environ.get("SKLEARN_MC_DOCS_QUICK", "0") not in ("", "0")
X, y = load_breast_cancer(return_X_y=True)
X_missing = np.where(make_mask(X.shape, missing_rate=0.25, random_state=0), np.nan, X)
print(f"{np.isnan(X_missing).mean():.0%} of {X.size} entries missing")

# %%
# The pipeline and the grid
# -------------------------
# Each dict of the grid is one family of candidates: the ``impute`` step is
# replaced by the estimator listed, and its ``impute__`` parameters are tuned
# within the family.
pipe = Pipeline(
    [
        ("impute", SVDImputer(random_state=0, device="cpu")),
        ("scale", StandardScaler()),
        ("clf", LogisticRegression(max_iter=2000)),
    ]
)
grid = [
    {
        "impute": [SVDImputer(random_state=0, device="cpu")],
        "impute__rank": [2, 5, 10] if QUICK else [2, 5, 10, 20, "auto"],
    },
    {"impute": [SklearnKNN()], "impute__n_neighbors": [5, 15]},
    {"impute": [SimpleImputer()]},
]
cv = StratifiedKFold(n_splits=3 if QUICK else 5, shuffle=True, random_state=0)
search = GridSearchCV(pipe, grid, cv=cv, n_jobs=1).fit(X_missing, y)
print("best:", search.best_params_, f"accuracy {search.best_score_:.3f}")

# %%
# Cross-validated accuracy of every candidate
# -------------------------------------------
res = search.cv_results_
labels = []
for params in res["params"]:
    name = type(params["impute"]).__name__
    extra = ", ".join(f"{k.split('__')[1]}={v}" for k, v in params.items() if "__" in k)
    labels.append(f"{name}({extra})")
order = np.argsort(res["mean_test_score"])
fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.2))
ax.barh(
    np.array(labels)[order],
    res["mean_test_score"][order],
    xerr=res["std_test_score"][order],
    color=["tab:blue" if "SVD" in lb else "tab:grey" for lb in np.array(labels)[order]],
)
ax.set_xlim(0.85, 1.0)
ax.set_xlabel("cross-validated accuracy")
ax.set_title("Pipeline(imputer, scaler, logistic regression)")
fig.tight_layout()
plt.show()

# %%
# Tuning the imputer alone
# ------------------------
# No target, no scorer: ``GridSearchCV`` calls ``SVDImputer.score``, minus the
# RMSE on hidden entries of the held-out rows (in the units of ``X``, so the
# large-valued columns dominate: standardise first if that is not wanted).
alone = GridSearchCV(
    Pipeline(
        [
            ("scale", StandardScaler()),
            ("impute", SVDImputer(random_state=0, device="cpu")),
        ]
    ),
    {"impute__rank": [1, 2, 3, 5, 8] if QUICK else [1, 2, 3, 5, 8, 12, 20]},
    cv=3,
).fit(X_missing)
ranks = alone.cv_results_["param_impute__rank"].data.astype(int)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(ranks, -alone.cv_results_["mean_test_score"], marker="o")
# A log scale: a rank beyond what the data support over-fits (in the full
# run rank 20 gave an RMSE near 12, many times the others'), and on a linear
# axis it would flatten the differences between the small ranks.
ax.set_yscale("log")
ax.set_xlabel("rank")
ax.set_ylabel("RMSE on hidden entries (standardised units)")
ax.set_title(f"best rank: {alone.best_params_['impute__rank']}")
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
