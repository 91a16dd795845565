"""
A real table with an id, a date and text columns
=================================================

Most tables are not matrices: they mix measurements in different units with
identifiers, dates and text. This example completes one such table, the
classic *cars* (Auto MPG) data shipped with the ``vega_datasets`` package
(installed with the ``docs`` extra; nothing is downloaded). Its 406 cars have
a name (text), a model year (a date), a region of origin (text) and six
measurements, of which ``Miles_per_Gallon`` (8 cars) and ``Horsepower``
(6 cars) are missing for real. We give every row an integer ``car_id``, as a
database table would have.

The recipe:

1. choose the columns that are *measurements* — numeric, and not an id;
   a date can become a number (here the model year);
2. check on your own table which imputer fills it best, by hiding observed
   cells and scoring the fills;
3. impute, and put the filled columns back next to the others.
"""

# %%
# The table
# ---------
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer
from vega_datasets import local_data

from sklearn_mc import ChainedImputer, KNNImputer, SVDImputer
from sklearn_mc.model_selection import hide_entries

QUICK = os.environ.get("SKLEARN_MC_DOCS_QUICK", "0") not in ("", "0")

cars = local_data.cars()
cars.insert(0, "car_id", np.arange(1, len(cars) + 1))
print(cars.head().to_string())
print(cars.isna().sum().to_string())

# %%
# Which columns to impute
# -----------------------
# ``car_id`` is numeric but is not a measurement: as a feature it would make
# the neighbours of a car the cars listed next to it. ``Name`` and
# ``Origin`` are text, and the imputers take numbers only. ``Year`` is a
# date; the model year as a number is a useful feature (in this table the
# mean fuel economy rose from 18 mpg in 1970 to 31 in 1982), so we add it.
cars["model_year"] = cars["Year"].dt.year
numeric = cars.select_dtypes("number").columns.drop("car_id")
print(list(numeric))
X = cars[numeric]

# %%
# Which imputer for this table?
# -----------------------------
# Hide 10 % of the *observed* cells, fill them with each imputer, and score
# the fills by their RMSE in units of each column's standard deviation
# (filling in the column mean scores about 1). Every imputer reads and
# writes pandas; scikit-learn's imputers are in the comparison too.
candidates = {
    "ChainedImputer": ChainedImputer(random_state=0),
    "SVDImputer": SVDImputer(random_state=0),
    "KNNImputer": KNNImputer(),
    "sklearn IterativeImputer": IterativeImputer(random_state=0),
    "sklearn SimpleImputer (mean)": SimpleImputer(),
}
repeats = 1 if QUICK else 3
std = X.std().to_numpy()
errors = {name: [] for name in candidates}
seconds = {name: 0.0 for name in candidates}
for seed in range(repeats):
    X_train, hidden = hide_entries(X.to_numpy(), fraction=0.1, random_state=seed)
    X_train = pd.DataFrame(X_train, columns=numeric)
    for name, imputer in candidates.items():
        start = time.perf_counter()
        filled = np.asarray(imputer.fit_transform(X_train))
        seconds[name] += time.perf_counter() - start
        z = (filled - X.to_numpy()) / std
        errors[name].append(np.sqrt(np.mean(z[hidden] ** 2)))

scores = pd.DataFrame(
    {
        "RMSE (column-std units)": {k: np.mean(v) for k, v in errors.items()},
        "fit time per run (s)": {k: v / repeats for k, v in seconds.items()},
    }
).sort_values("RMSE (column-std units)")
print(scores.round(3).to_string())

# %%
# The best fill on this table is the first row above. Fit times are wall
# times of one run of this script, on whatever machine built this page.
fig, ax = plt.subplots(figsize=(7, 3))
ax.barh(scores.index[::-1], scores["RMSE (column-std units)"][::-1])
ax.set_xlabel("RMSE on hidden observed cells (column-std units)")
ax.set_title(f"cars: 10 % of observed cells hidden, {repeats} draw(s)")
fig.tight_layout()

# %%
# Impute and put back
# -------------------
# Fit the best imputer on the real table. ``set_output(transform="pandas")``
# keeps the column names and the index, so the filled columns go straight
# back into the frame; the id, the date and the text columns are untouched,
# and observed cells come back exactly as they were.
best = scores.index[0]
imputer = candidates[best].set_output(transform="pandas")
filled = imputer.fit_transform(X)
completed = cars.copy()
# complete integer columns (Cylinders, Weight_in_lbs) keep their dtype
completed[numeric] = filled.astype(X.dtypes.to_dict())
was_missing = X.isna()
shown = ["car_id", "Name", "Year", "Miles_per_Gallon", "Horsepower"]
rows = was_missing.any(axis=1)
print(
    completed.loc[rows, shown]
    .round({"Miles_per_Gallon": 1, "Horsepower": 1})
    .to_string()
)
assert completed[numeric].notna().all().all()
assert completed[numeric].where(~was_missing).equals(X.where(~was_missing))

# %%
# The filled cars among the others, against weight (which is observed for
# every car).
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
for ax, column in zip(axes, ["Miles_per_Gallon", "Horsepower"], strict=True):
    gap = cars[column].isna()
    ax.scatter(cars["Weight_in_lbs"], cars[column], s=8, c="0.6", label="observed")
    ax.scatter(
        completed.loc[gap, "Weight_in_lbs"],
        completed.loc[gap, column],
        s=30,
        c="C3",
        marker="x",
        label=f"imputed ({best})",
    )
    ax.set_xlabel("Weight_in_lbs")
    ax.set_ylabel(column)
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
