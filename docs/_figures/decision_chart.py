"""The user guide's decision chart: kind of data -> imputer to try first."""

import matplotlib.pyplot as plt

ROWS = [
    (
        "a table of measurements\n(mixed units, id / date / text columns)",
        "ChainedImputer",
        "sklearn IterativeImputer,\nKNNImputer",
    ),
    (
        "a matrix that is (nearly) low rank\n(sensors, expression, any size)",
        "SVDImputer",
        "few entries observed: DeepMFImputer",
    ),
    (
        "ratings or interactions\n(user x item, mostly unknown, sparse)",
        "SVDImputer or\nSGDMFImputer",
        "new users or items, stars: DMFImputer",
    ),
    (
        "an image or a smooth grid\n(time x sensor)",
        "AIRNetImputer",
        "in seconds instead of minutes: KNNImputer",
    ),
    (
        "rows that form groups\n(communities, clusters)",
        "SGDMFImputer or\nSVDImputer",
        "no training, a baseline: KNNImputer",
    ),
    (
        "new rows that must be filled fast\n(many rows, non-linear)",
        "MLPImputer",
        "ChainedImputer",
    ),
]

fig, ax = plt.subplots(figsize=(10, 6.2))
ax.set_xlim(0, 10)
ax.set_ylim(-0.5, len(ROWS) + 0.4)
ax.axis("off")
ax.text(
    1.9,
    len(ROWS) + 0.05,
    "My data is ...",
    ha="center",
    va="center",
    fontsize=12,
    weight="bold",
)
ax.text(
    6.1,
    len(ROWS) + 0.05,
    "try first",
    ha="center",
    va="center",
    fontsize=12,
    weight="bold",
)
ax.text(
    8.75,
    len(ROWS) + 0.05,
    "then compare with",
    ha="center",
    va="center",
    fontsize=11,
    weight="bold",
)
box = dict(boxstyle="round,pad=0.4", fc="#eef3f8", ec="#4a6f96")
pick = dict(boxstyle="round,pad=0.4", fc="#fff4dd", ec="#b7791f")
for k, (data, first, then) in enumerate(ROWS):
    y = len(ROWS) - 1 - k + 0.4
    ax.text(1.9, y, data, ha="center", va="center", fontsize=10.5, bbox=box)
    ax.annotate(
        "",
        xy=(4.85, y),
        xytext=(3.95, y),
        arrowprops=dict(arrowstyle="->", color="#4a6f96"),
    )
    ax.text(
        6.1, y, first, ha="center", va="center", fontsize=10.5, weight="bold", bbox=pick
    )
    ax.text(
        8.75,
        y,
        then.replace(": ", ":\n"),
        ha="center",
        va="center",
        fontsize=10,
        color="#333333",
    )
fig.tight_layout()
