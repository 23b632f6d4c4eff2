"""Figures 3–7 of the paper (Appendix A.4): score and latency distributions of a Response Score Dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecvl_router.experiments.dataset_analysis import DatasetAnalysis
from ecvl_router.report.figures import pyplot, save_figure

HEATMAP_TITLES = {
    "mean_score": ("(a) mean score ↑", "viridis", "{:.2f}"),
    "median_latency": ("(b) median latency [s] ↓", "magma_r", "{:.2f}"),
    "score_per_second": ("(c) score per second ↑", "viridis", "{:.1f}"),
    "score_std": ("(d) score standard deviation ↓", "plasma", "{:.2f}"),
}


def _score_bins(scores: np.ndarray) -> np.ndarray | int:
    """One bin per level for integer scores with few levels, else 20 bins."""
    levels = np.unique(scores)
    if np.all(levels == np.round(levels)) and levels.max() - levels.min() <= 40:
        return np.arange(levels.min() - 0.5, levels.max() + 1.5)
    return 20


def score_histogram(analysis: DatasetAnalysis, path: Path) -> Path:
    """Figure 3: the score histogram over every response, mean and median marked."""
    plt = pyplot()
    scores = analysis.responses["score"].to_numpy(dtype=float)
    figure, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    ax.hist(scores, bins=_score_bins(scores), color="#4C72B0", edgecolor="white")
    for value, label, style in ((scores.mean(), "mean", "--"), (np.median(scores), "median", ":")):
        ax.axvline(value, color="black", linestyle=style, label=f"{label} {value:.2f}")
    ax.set(xlabel=f"score (scale {analysis.score_min:g}–{analysis.score_max:g})", ylabel="responses",
           title=f"Score distribution over {len(scores):,} responses")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    return save_figure(figure, path)


def score_breakdown(analysis: DatasetAnalysis, path: Path) -> Path:
    """Figure 4: (a) mean score ± SE by source (easiest first); (b) score boxplots per model with means."""
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5), constrained_layout=True)
    by_source = analysis.by_source.iloc[::-1]
    left.barh(by_source.index.astype(str), by_source["score_mean"], xerr=by_source["score_se"].fillna(0), color="#55A868", capsize=3)
    for y, (mean, se) in enumerate(zip(by_source["score_mean"], by_source["score_se"].fillna(0))):
        left.text(mean + se, y, f" {mean:.2f}", va="center", fontsize=8)
    left.set(xlabel="mean score (± standard error)", title="(a) difficulty by source — higher mean ⇒ easier")
    models = list(analysis.by_model.index)
    data = [analysis.responses.loc[analysis.responses["model"] == m, "score"].to_numpy(dtype=float) for m in models]
    right.boxplot(data, showmeans=True, meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black"})
    right.set_xticks(range(1, len(models) + 1), models, rotation=30, ha="right")
    for x, values in enumerate(data, start=1):
        right.annotate(f"{values.mean():.2f}", (x, values.mean()), textcoords="offset points", xytext=(8, 4), fontsize=8)
    right.set(ylabel="score", title="(b) scores per model (◇ and number: mean)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return save_figure(figure, path)


def latency_distribution(analysis: DatasetAnalysis, path: Path) -> Path:
    """Figure 5: latency histogram (mean and median marked) and the percentile curve with P50/P75/P90/P99."""
    plt = pyplot()
    latency = analysis.responses["latency_s"].to_numpy(dtype=float)
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 4.8), constrained_layout=True)
    upper = np.percentile(latency, 99.5)
    left.hist(latency[latency <= upper], bins=60, color="#C44E52", edgecolor="white")
    for value, label, style in ((latency.mean(), "mean", "--"), (np.median(latency), "median", ":")):
        left.axvline(value, color="black", linestyle=style, label=f"{label} {value:.2f} s")
    left.set(xlabel="latency [s] (up to P99.5)", ylabel="responses", title="(a) latency histogram")
    left.legend()
    q = np.linspace(0, 100, 201)
    right.plot(q, np.percentile(latency, q), color="#C44E52")
    for percentile, value in analysis.latency_percentiles.items():
        right.plot([percentile], [value], marker="o", color="black")
        right.annotate(f"P{percentile} {value:.2f} s", (percentile, value), textcoords="offset points", xytext=(-70, 6), fontsize=9)
    right.set(xlabel="percentile", ylabel="latency [s]", title="(b) latency percentile curve")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return save_figure(figure, path)


def latency_breakdown(analysis: DatasetAnalysis, path: Path) -> Path:
    """Figure 6: (a) latency per model (boxplots, median labelled); (b) mean latency per source (ranking)."""
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5), constrained_layout=True)
    models = list(analysis.by_model.index)
    data = [analysis.responses.loc[analysis.responses["model"] == m, "latency_s"].to_numpy(dtype=float) for m in models]
    left.boxplot(data, showfliers=False)
    left.set_xticks(range(1, len(models) + 1), models, rotation=30, ha="right")
    for x, values in enumerate(data, start=1):
        left.annotate(f"{np.median(values):.2f} s", (x, np.median(values)), textcoords="offset points", xytext=(10, 2), fontsize=8)
    left.set(ylabel="latency [s] (whiskers 1.5 IQR, outliers hidden)", title="(a) latency per model (median labelled)")
    by_source = analysis.by_source.sort_values("latency_mean")
    right.barh(by_source.index.astype(str), by_source["latency_mean"], color="#8172B2")
    for y, value in enumerate(by_source["latency_mean"]):
        right.text(value, y, f" {value:.2f} s", va="center", fontsize=8)
    right.set(xlabel="mean latency over all models [s]", title="(b) latency per source (slowest on top)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return save_figure(figure, path)


def model_source_heatmaps(analysis: DatasetAnalysis, path: Path) -> Path:
    """Figure 7: model × source heatmaps of mean score, median latency, score per second and score std.

    Cell values are printed; in panel (d), bold numbers mark cells whose std exceeds the average cell.
    """
    plt = pyplot()
    first = next(iter(analysis.heatmaps.values()))
    width = max(12.0, 2.2 * first.shape[1] + 4)
    figure, axes = plt.subplots(2, 2, figsize=(width, 0.9 * first.shape[0] * 2 + 3), constrained_layout=True)
    for ax, (panel, table) in zip(axes.flat, analysis.heatmaps.items()):
        title, cmap, fmt = HEATMAP_TITLES[panel]
        values = table.to_numpy(dtype=float)
        image = ax.imshow(values, cmap=cmap, aspect="auto")
        figure.colorbar(image, ax=ax, shrink=0.85)
        ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns], rotation=30, ha="right")
        ax.set_yticks(range(table.shape[0]), [str(i) for i in table.index])
        average = np.nanmean(values)
        for (row, column), value in np.ndenumerate(values):
            if np.isnan(value):
                continue
            bold = panel == "score_std" and value > average
            ax.text(column, row, fmt.format(value), ha="center", va="center", fontsize=8, color="white",
                    fontweight="bold" if bold else "normal",
                    path_effects=_outline())
        ax.set_title(title)
    figure.suptitle("Model × source heatmaps (rows: models, columns: sources)")
    return save_figure(figure, path)


def _outline() -> list:
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=1.5, foreground="black")]
