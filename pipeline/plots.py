"""Figures people would rather look at than read. Each function returns a matplotlib Figure;
:func:`render_pngs` draws them once, and the orchestrator decides where the PNGs go (the output
folder, the report, MLflow)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.dates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline import layout
from pipeline.config import STATUSES

if TYPE_CHECKING:
    from pipeline.model import TrainingResult

STATUS_COLOURS = {
    "new": "#4e79a7",
    "active": "#59a14f",
    "loyal": "#b07aa1",
    "occasional": "#9c755f",
    "at_risk": "#f28e2b",
    "declining": "#edc948",
    "lost": "#e15759",
}
PROFILE_FEATURES = (
    "repeat_purchases_per_year",
    "days_since_last_purchase",
    "overdue_ratio",
    "tenure_days",
    "avg_order_value",
    "spend_change",
    "p_alive",
    "expected_spend",
)


def _present(segments: pd.DataFrame) -> list[str]:
    return [s for s in STATUSES if s in set(segments["status"])]


def status_sizes(segments: pd.DataFrame) -> Figure:
    """Customers and share of expected value per status, side by side."""
    order = _present(segments)
    grouped = segments.groupby("status")
    counts = grouped.size().reindex(order)
    value = grouped["expected_spend"].sum().reindex(order)
    value_share = value / value.sum() if value.sum() > 0 else value * 0
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    colours = [STATUS_COLOURS[s] for s in order]
    axes[0].barh(order, counts, color=colours)
    axes[0].set_title("Customers per status")
    for y, count in enumerate(counts):
        axes[0].text(count, y, f" {count:,} ({count / counts.sum():.0%})", va="center", fontsize=8)
    axes[1].barh(order, value_share, color=colours)
    axes[1].set_title("Share of expected spend over the horizon")
    axes[1].xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    for ax in axes:
        ax.invert_yaxis()
        ax.spines[["top", "right"]].set_visible(False)
    return fig


def status_profiles(segments: pd.DataFrame) -> Figure:
    """Median of each key feature per status, coloured by its percentile in the population."""
    order = _present(segments)
    features = [f for f in PROFILE_FEATURES if f in segments.columns]
    medians = segments.groupby("status")[features].median().reindex(order)
    ranks = segments[features].rank(pct=True).groupby(segments["status"]).median().reindex(order)
    fig, ax = plt.subplots(
        figsize=(1.3 * len(features) + 2, 0.55 * len(order) + 1.8), constrained_layout=True
    )
    image = ax.imshow(ranks.to_numpy(), cmap="RdYlBu_r", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(features)), [f.replace("_", "\n") for f in features], fontsize=8)
    ax.set_yticks(range(len(order)), order)
    for (row, col), value in np.ndenumerate(medians.to_numpy()):
        ax.text(col, row, f"{value:.3g}", ha="center", va="center", fontsize=8)
    ax.set_title("Profile per status: median value (colour = percentile in the population)")
    fig.colorbar(image, ax=ax, label="median percentile")
    return fig


def p_alive_by_status(segments: pd.DataFrame) -> Figure:
    """Distribution of the probability of still being a customer, per status."""
    order = _present(segments)
    fig, ax = plt.subplots(figsize=(9, 4), constrained_layout=True)
    data = [segments.loc[segments["status"] == s, "p_alive"].to_numpy() for s in order]
    parts = ax.boxplot(data, vert=False, patch_artist=True, showfliers=False)
    ax.set_yticks(range(1, len(order) + 1), order)
    for patch, status in zip(parts["boxes"], order, strict=True):
        patch.set_facecolor(STATUS_COLOURS[status])
    ax.set_xlabel("P(alive), from the chosen purchase model (BG/NBD, Pareto/NBD or MBG/NBD)")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_title("How likely each status's customers are to still be customers")
    return fig


def clv_by_status(segments: pd.DataFrame) -> Figure:
    """Distribution of discounted customer value over the horizon, per status (log scale)."""
    order = _present(segments)
    fig, ax = plt.subplots(figsize=(9, 4), constrained_layout=True)
    data = [segments.loc[segments["status"] == s, "clv"].clip(lower=0.01).to_numpy() for s in order]
    parts = ax.boxplot(data, vert=False, patch_artist=True, showfliers=False)
    ax.set_yticks(range(1, len(order) + 1), order)
    for patch, status in zip(parts["boxes"], order, strict=True):
        patch.set_facecolor(STATUS_COLOURS[status])
    ax.set_xscale("log")
    ax.set_xlabel("CLV over the horizon (discounted; log scale)")
    ax.invert_yaxis()
    ax.set_title("Customer value per status")
    return fig


def confusion(matrix: pd.DataFrame) -> Figure:
    """Planted (rows) against found (columns) statuses, as shares of each planted status."""
    shares = matrix.div(matrix.sum(axis=1).replace(0, 1), axis=0)
    fig, ax = plt.subplots(figsize=(7, 6), constrained_layout=True)
    ax.imshow(shares.to_numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    ax.set_xlabel("found")
    ax.set_ylabel("planted")
    for (row, col), count in np.ndenumerate(matrix.to_numpy()):
        colour = "white" if shares.iloc[row, col] > 0.6 else "black"
        ax.text(col, row, f"{count}", ha="center", va="center", fontsize=8, color=colour)
    ax.set_title("Planted statuses recovered")
    return fig


def holdout_calibration(deciles: pd.DataFrame, model_name: str) -> Figure:
    """CLV fit check: mean predicted against mean actual holdout spend per decile of prediction."""
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    ax.plot(deciles["decile"], deciles["mean_actual"], "o-", label="actual", color="#4e79a7")
    ax.plot(deciles["decile"], deciles["mean_predicted"], "s--", label="predicted", color="#f28e2b")
    ax.set_xticks(range(1, 11))
    ax.set_xlabel("decile of predicted holdout spend (10 = highest)")
    ax.set_ylabel("mean spend in the holdout")
    ax.set_title(f"Holdout calibration of the chosen value model ({model_name})")
    ax.legend()
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def k_selection(evidence: pd.DataFrame, reason: str) -> Figure:
    """The evidence behind k: quality and stability over the range tried."""
    criteria = [
        c for c in ("silhouette", "calinski_harabasz", "bic", "stability") if c in evidence.columns
    ]
    fig, axes = plt.subplots(
        1, len(criteria), figsize=(3.4 * len(criteria), 3.6), constrained_layout=True
    )
    for ax, criterion in zip(np.atleast_1d(axes), criteria, strict=True):
        ax.plot(evidence["k"], evidence[criterion], "o-", color="#4e79a7")
        chosen = evidence[evidence["chosen"]]
        ax.plot(chosen["k"], chosen[criterion], "o", color="#e15759", markersize=10, label="chosen")
        ax.set_title(criterion.replace("_", " "))
        ax.set_xlabel("k")
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(reason, fontsize=9)
    return fig


def transitions(counts: pd.DataFrame) -> Figure:
    """Status migration since the champion: shares of each earlier status (rows) by new status."""
    shares = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
    fig, ax = plt.subplots(figsize=(7, 6), constrained_layout=True)
    ax.imshow(shares.to_numpy(), cmap="Purples", vmin=0, vmax=1)
    ax.set_xticks(range(len(counts.columns)), counts.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(counts.index)), counts.index)
    ax.set_xlabel("status now")
    ax.set_ylabel("status under the champion")
    for (row, col), count in np.ndenumerate(counts.to_numpy()):
        colour = "white" if shares.iloc[row, col] > 0.6 else "black"
        ax.text(
            col,
            row,
            f"{count}\n{shares.iloc[row, col]:.0%}",
            ha="center",
            va="center",
            fontsize=7,
            color=colour,
        )
    ax.set_title("Who moved since the champion's run")
    return fig


KPI_TITLES = {
    "retention": "Retention rate (bought again in the recent window)",
    "repeat_rate": "Repeat-purchase rate",
    "avg_spend": "Average spend in the recent window",
}


def kpis_across_runs(runs: pd.DataFrame) -> Figure:
    """Each KPI over as-of dates, one line per status (a gap where a run has no value)."""
    fig, axes = plt.subplots(
        1, len(KPI_TITLES), figsize=(5.2 * len(KPI_TITLES), 4.2), constrained_layout=True
    )
    dates = pd.to_datetime(runs["as_of"])
    for ax, (kpi, title) in zip(np.atleast_1d(axes), KPI_TITLES.items(), strict=True):
        for status in STATUSES:
            column = f"kpi_{kpi}_{status}"
            if column in runs.columns and runs[column].notna().any():
                ax.plot(dates, runs[column], "o-", color=STATUS_COLOURS[status], label=status)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("as of")
        if kpi != "avg_spend":
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        locator = matplotlib.dates.AutoDateLocator(maxticks=6)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(matplotlib.dates.ConciseDateFormatter(locator))
        ax.spines[["top", "right"]].set_visible(False)
    np.atleast_1d(axes)[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    fig.suptitle(f"KPIs per status over {len(runs)} runs", fontsize=11)
    return fig


def training_figures(result: TrainingResult) -> dict[str, Figure]:
    figures = {
        "status_sizes": status_sizes(result.segments),
        "status_profiles": status_profiles(result.segments),
        "p_alive_by_status": p_alive_by_status(result.segments),
        "clv_by_status": clv_by_status(result.segments),
    }
    if "k_selection" in result.tables:
        figures["k_selection"] = k_selection(result.tables["k_selection"], result.k_reason)
    if "clv_holdout_deciles" in result.tables:
        figures["clv_holdout_calibration"] = holdout_calibration(
            result.tables["clv_holdout_deciles"], result.value_model_name
        )
    if result.confusion is not None:
        figures["planted_confusion"] = confusion(result.confusion)
    if "labeling_kpis_across_runs" in result.tables:
        figures["kpis_across_runs"] = kpis_across_runs(result.tables["labeling_kpis_across_runs"])
    if "labeling_transitions" in result.tables:
        figures["status_transitions"] = transitions(
            result.tables["labeling_transitions"].set_index("before")
        )
    return figures


def close(figures: dict[str, Figure]) -> None:
    for figure in figures.values():
        plt.close(figure)


# One resolution for every place a figure goes: drawing a figure is most of its cost (about
# 0.1-0.3 s each), so the output folder, the report and MLflow share one PNG per figure.
PNG_DPI = 110


def render_pngs(figures: Mapping[str, Figure]) -> dict[str, bytes]:
    """Each figure drawn once as PNG bytes, then closed. The metadata is fixed (no software
    version, no date), so the same figure gives the same bytes on every run."""
    pngs = {}
    for name, figure in figures.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=PNG_DPI, metadata={"Software": None})
        plt.close(figure)
        pngs[name] = buffer.getvalue()
    return pngs


# -- backtest ------------------------------------------------------------------------------------
BACKTEST_MODEL_COLOURS = {
    "project": "#4e79a7",
    "last_period_again": "#9c755f",
    "lifetimes_bgnbd": "#f28e2b",
    "lifetimes_pareto": "#59a14f",
}


def reliability_diagram(calibration: pd.DataFrame) -> Figure:
    """Forecast P(buys again) against the share who did, per 10% bin, one line per model."""
    fig, ax = plt.subplots(figsize=(6.5, 5), constrained_layout=True)
    ax.plot([0, 1], [0, 1], ":", color="#999", label="perfectly calibrated")
    for model, table in calibration.groupby("model", sort=False):
        filled = table[table["customers"] > 0]
        ax.plot(
            filled["mean_probability"],
            filled["share_bought"],
            "o-",
            color=BACKTEST_MODEL_COLOURS.get(str(model)),
            label=str(model),
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("forecast probability of buying again (bin mean)")
    ax.set_ylabel("share who bought again")
    ax.set_title("Reliability: forecast against outcome (all cut-offs pooled)")
    ax.legend(fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def lift_by_status(by_status: pd.DataFrame) -> Figure:
    """Share buying again per project status and per RFM segment, against the base rate."""
    groupings = list(dict.fromkeys(by_status["grouping"]))
    fig, axes = plt.subplots(
        1, len(groupings), figsize=(6 * len(groupings), 4.5), constrained_layout=True, squeeze=False
    )
    for ax, grouping in zip(axes[0], groupings, strict=True):
        table = by_status[by_status["grouping"] == grouping]
        colours = [STATUS_COLOURS.get(str(g), "#8c8c8c") for g in table["group"]]
        ax.barh(table["group"].astype(str), table["share_buying_again"], color=colours)
        base = (table["share_buying_again"] * table["customers"]).sum() / table["customers"].sum()
        ax.axvline(base, color="#333", linestyle="--", linewidth=1, label=f"base {base:.0%}")
        for y, (share, lift) in enumerate(
            zip(table["share_buying_again"], table["lift"], strict=True)
        ):
            ax.text(share, y, f" {share:.0%} (x{lift:.2f})", va="center", fontsize=8)
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_title(f"Share buying again next period, by {grouping}")
        ax.legend(fontsize=8, loc="lower right")
        ax.spines[["top", "right"]].set_visible(False)
    return fig


def backtest_deciles(deciles: pd.DataFrame) -> Figure:
    """Mean realised spend per decile of each model's spend forecast (a steeper rise ranks better)."""
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for model, table in deciles.groupby("model", sort=False):
        ax.plot(
            table["decile"],
            table["mean_actual"],
            "o-",
            color=BACKTEST_MODEL_COLOURS.get(str(model)),
            label=str(model),
        )
    ax.set_xticks(range(1, 11))
    ax.set_xlabel("decile of forecast spend (10 = highest)")
    ax.set_ylabel("mean realised spend next period")
    ax.set_title("Realised spend by forecast decile (all cut-offs pooled)")
    ax.legend(fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def backtest_figures(tables: dict[str, pd.DataFrame]) -> dict[str, Figure]:
    """The backtest's plots, from its pooled tables."""

    def pooled(name: str) -> pd.DataFrame:
        return tables[name][tables[name]["cutoff"] == "pooled"]

    return {
        "reliability": reliability_diagram(pooled("calibration")),
        "lift_by_status": lift_by_status(pooled(layout.BACKTEST_BY_STATUS)),
        "spend_deciles": backtest_deciles(pooled("backtest_deciles")),
    }
