"""Backtest: every status and forecast made at a past cut-off, judged by what customers did next.

For each cut-off the *same* code as ``loyalty train`` (:func:`pipeline.ingest.load_transactions`'s
cleaning, :func:`pipeline.train.fit_segmentation`) runs on the data up to the cut-off; each
customer's outputs are then compared with what they did in (cut-off, cut-off + horizon],
computed from the whole file cleaned once. The baselines a user would pick instead
(:mod:`pipeline.baselines`) are judged on the same customers, by the same metrics
(:mod:`pipeline.forecast_metrics`).

:func:`judge_cutoff` and the ``*_table`` functions are pure; :func:`run_backtest` adds the edges
(reading, checking the dates, writing the outputs atomically, MLflow).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import baselines, forecast_metrics, io, layout
from pipeline.config import STATUSES, Config
from pipeline.errors import ConfigError, InputError, InsufficientHistoryError
from pipeline.metric_names import (
    LAST_PERIOD,
    MODELS,
    POOLED,
    PROJECT,
)
from pipeline.schema import AMOUNT, CUSTOMER_ID, TIMESTAMP, CleanTransactions, clean_transactions

log = logging.getLogger(__name__)

# Metrics and which way is better: the "where the project wins / loses" table reads them.
HIGHER_IS_BETTER = {
    "roc_auc": True,
    "pr_auc": True,
    "brier": False,
    "log_loss": False,
    "ece": False,
    "spend_spearman": True,
    "spend_gini": True,
    "spend_mae": False,
    "spend_rmse": False,
    "spend_aggregate_error_pct": None,  # closer to 0 is better
    "purchases_spearman": True,
    "purchases_gini": True,
    "purchases_mae": False,
    "purchases_rmse": False,
    "purchases_aggregate_error_pct": None,
}
Progress = Callable[[str], None]


# -- what each customer did, before and after a cut-off --------------------------------------
def _days(transactions: pd.DataFrame) -> pd.DataFrame:
    """One row per customer and purchase day with the day's spend (the project's purchase unit)."""
    days = transactions.assign(day=transactions[TIMESTAMP].dt.normalize())
    return days.groupby([CUSTOMER_ID, "day"], as_index=False, observed=True)[AMOUNT].sum()


def customer_history(
    transactions: pd.DataFrame, *, cutoff: pd.Timestamp, horizon_days: int
) -> pd.DataFrame:
    """One row per customer who bought by ``cutoff``, from one row per transaction.

    Columns: lifetimes' summary (``frequency`` = repeat purchase days, ``recency`` and ``T`` in
    days, ``monetary_value`` = mean spend of the repeat days), ``purchases_last`` and
    ``spend_last`` in (cutoff - horizon, cutoff], and ``past_daily_spend`` (all spend / days from
    the first purchase to the cut-off, counting both ends).
    """
    cutoff = pd.Timestamp(cutoff).normalize()
    days = _days(transactions[transactions[TIMESTAMP] < cutoff + pd.Timedelta(days=1)])
    grouped = days.groupby(CUSTOMER_ID, observed=True)
    first, last = grouped["day"].min(), grouped["day"].max()
    total = grouped[AMOUNT].sum()
    count = grouped.size()
    first_spend = days.loc[grouped["day"].idxmin(), [CUSTOMER_ID, AMOUNT]].set_index(CUSTOMER_ID)
    repeat_spend = total - first_spend[AMOUNT].reindex(total.index)
    recent = days[days["day"] > cutoff - pd.Timedelta(days=horizon_days)]
    recent_grouped = recent.groupby(CUSTOMER_ID, observed=True)
    tenure = (cutoff - first).dt.days
    table = pd.DataFrame(
        {
            "frequency": (count - 1).astype("float64"),
            "recency": (last - first).dt.days.astype("float64"),
            "T": tenure.astype("float64"),
            "monetary_value": (repeat_spend / (count - 1).where(count > 1)).fillna(0.0),
            "purchases_last": recent_grouped.size().reindex(total.index, fill_value=0),
            "spend_last": recent_grouped[AMOUNT].sum().reindex(total.index, fill_value=0.0),
            "past_daily_spend": total / (tenure + 1),
        }
    )
    return table.astype("float64").rename_axis(CUSTOMER_ID).reset_index()


def next_period(
    transactions: pd.DataFrame,
    customers: pd.Series,
    *,
    cutoff: pd.Timestamp,
    horizon_days: int,
) -> pd.DataFrame:
    """Purchase days and spend of each of ``customers`` in (cutoff, cutoff + horizon]."""
    cutoff = pd.Timestamp(cutoff).normalize()
    start, end = cutoff + pd.Timedelta(days=1), cutoff + pd.Timedelta(days=horizon_days + 1)
    window = transactions[(transactions[TIMESTAMP] >= start) & (transactions[TIMESTAMP] < end)]
    days = _days(window).groupby(CUSTOMER_ID, observed=True)
    totals = pd.DataFrame({"purchases": days.size(), "spend": days[AMOUNT].sum()})
    aligned = totals.reindex(pd.Index(customers.astype("string"), name=CUSTOMER_ID)).fillna(0.0)
    aligned = aligned.astype("float64").reset_index()
    aligned["bought"] = (aligned["purchases"] > 0).astype("float64")
    return aligned


# -- the cut-offs and their checks ---------------------------------------------------------------
def minimum_history_days(horizon_days: int) -> int:
    """The history a cut-off needs behind it: one full horizon.

    A forecast of H days is judged against "the last H days again"; with less than H days of
    history neither the baseline nor the project's trend and holdout see a whole period.
    """
    return horizon_days


def rolling_cutoffs(last_day: pd.Timestamp, *, folds: int, horizon_days: int) -> list[pd.Timestamp]:
    """N cut-offs spaced by the horizon, the last one a horizon before ``last_day``; oldest first."""
    step = pd.Timedelta(days=horizon_days)
    return [pd.Timestamp(last_day).normalize() - step * k for k in range(folds, 0, -1)]


def check_cutoffs(
    cutoffs: list[pd.Timestamp],
    *,
    first_day: pd.Timestamp,
    last_day: pd.Timestamp,
    horizon_days: int,
    source: str,
) -> None:
    """Refuse a cut-off with too little history before it, or whose horizon runs past the data.

    Raises
    ------
    InputError
        Naming the cut-off, the dates of the data and what to do.
    """
    minimum = minimum_history_days(horizon_days)
    for cutoff in cutoffs:
        end = cutoff + pd.Timedelta(days=horizon_days)
        if end > last_day:
            raise InputError(
                source,
                f"cut-off {cutoff.date()} + {horizon_days} days ends on {end.date()}, after the "
                f"data's last date {last_day.date()}: the outcome would be cut short",
                f"Choose a cut-off on or before {(last_day - pd.Timedelta(days=horizon_days)).date()}"
                " or a shorter --horizon-days",
            )
        history = (cutoff - first_day).days + 1
        if history < minimum:
            raise InputError(
                source,
                f"cut-off {cutoff.date()} has {max(history, 0)} days of history (the data starts "
                f"on {first_day.date()}); a backtest needs at least one horizon ({minimum} days) "
                "before a cut-off, so the last horizon is seen whole",
                f"Choose a cut-off on or after {(first_day + pd.Timedelta(days=minimum - 1)).date()}"
                ", fewer --folds or a shorter --horizon-days",
            )


# -- judging one cut-off (pure) ------------------------------------------------------------------
@dataclass
class CutoffJudgement:
    """Every customer at one cut-off with each model's forecast and what they then did."""

    cutoff: pd.Timestamp
    customers: pd.DataFrame  # one row per customer: status, rfm_segment, value_trend, outcomes
    forecasts: pd.DataFrame  # one row per customer and model: p_purchase, score, expectations
    failures: dict[str, str] = field(default_factory=dict)
    nonfinite: dict[str, int] = field(default_factory=dict)
    value_model: str = ""  # the value model the project chose at this cut-off


def project_forecasts(segments: pd.DataFrame) -> pd.DataFrame:
    """The project's forecasts: ``p_purchase`` when the segment table has it, else ``p_alive``."""
    probability = segments["p_purchase"] if "p_purchase" in segments else segments["p_alive"]
    return pd.DataFrame(
        {
            CUSTOMER_ID: segments[CUSTOMER_ID].astype("string").to_numpy(),
            "p_purchase": probability.to_numpy(dtype="float64"),
            "score": probability.to_numpy(dtype="float64"),
            "expected_purchases": segments["expected_purchases"].to_numpy(dtype="float64"),
            "expected_spend": segments["expected_spend"].to_numpy(dtype="float64"),
        }
    )


def judge_cutoff(
    cutoff: pd.Timestamp,
    *,
    segments: pd.DataFrame,
    history: pd.DataFrame,
    outcomes: pd.DataFrame,
    lifetimes: list[baselines.BaselineForecast],
    value_model: str = "",
) -> CutoffJudgement:
    """Put the project's and the baselines' forecasts beside the outcomes, customer by customer.

    ``history`` is :func:`customer_history` and ``outcomes`` :func:`next_period` for the
    customers of ``segments``; ``lifetimes`` forecasts carry ``customer_id``.
    """
    ids = segments[CUSTOMER_ID].astype("string")
    # A customer the project segments always has a history; 0 keeps the frames aligned if not.
    history = history.set_index(CUSTOMER_ID).reindex(ids.to_numpy()).fillna(0.0)
    rfm = baselines.rfm_segments(segments)
    customers = pd.DataFrame(
        {
            CUSTOMER_ID: ids.to_numpy(),
            "status": segments["status"].astype("string").to_numpy(),
            "rfm_segment": rfm["rfm_segment"].to_numpy(),
            "value_trend": segments["value_trend"].astype("string").to_numpy(),
            "past_daily_spend": history["past_daily_spend"].to_numpy(),
        }
    ).merge(outcomes, on=CUSTOMER_ID, how="left", validate="one_to_one")
    last = baselines.last_period_again(history["purchases_last"], history["spend_last"])
    frames = [
        project_forecasts(segments).assign(model=PROJECT),
        last.assign(**{CUSTOMER_ID: ids.to_numpy()}, model=LAST_PERIOD),
    ]
    failures, nonfinite = {}, {}
    for forecast in lifetimes:
        if forecast.forecasts is None:
            failures[forecast.name] = forecast.failure
            continue
        nonfinite[forecast.name] = forecast.nonfinite
        frames.append(
            forecast.forecasts.drop(columns=["p_alive"]).assign(
                score=lambda f: f["p_purchase"], model=forecast.name
            )
        )
    forecasts = pd.concat(frames, ignore_index=True)
    # Every model is judged on the same customers: the project's.
    forecasts = forecasts[forecasts[CUSTOMER_ID].isin(set(ids))]
    return CutoffJudgement(
        pd.Timestamp(cutoff),
        customers,
        forecasts.reset_index(drop=True),
        failures,
        nonfinite,
        value_model,
    )


def _with_outcomes(judgement: CutoffJudgement) -> pd.DataFrame:
    outcome_columns = [CUSTOMER_ID, "purchases", "spend", "bought"]
    return judgement.forecasts.merge(
        judgement.customers[outcome_columns], on=CUSTOMER_ID, how="left"
    ).assign(cutoff=str(judgement.cutoff.date()))


def model_metrics(judged: pd.DataFrame) -> dict[str, float]:
    """Every metric of one model over the customers of ``judged`` (forecasts with outcomes)."""
    metrics = {"customers": float(len(judged))}
    metrics.update(
        forecast_metrics.probability_metrics(
            judged["bought"], judged["p_purchase"], score=judged["score"]
        )
    )
    for target, forecast in (("spend", "expected_spend"), ("purchases", "expected_purchases")):
        values = forecast_metrics.value_metrics(judged[target], judged[forecast])
        metrics.update({f"{target}_{name}": value for name, value in values.items()})
    return metrics


def _groups(judgements: list[CutoffJudgement]) -> list[tuple[str, list[CutoffJudgement]]]:
    """Each cut-off on its own, then all of them pooled."""
    return [(str(j.cutoff.date()), [j]) for j in judgements] + [(POOLED, judgements)]


def metrics_table(judgements: list[CutoffJudgement]) -> pd.DataFrame:
    """Rows: cut-off x model x metric (with a note for a model whose fit failed)."""
    rows = []
    for label, members in _groups(judgements):
        judged = pd.concat([_with_outcomes(j) for j in members], ignore_index=True)
        failed = {name: reason for j in members for name, reason in j.failures.items()}
        for model in MODELS:
            if model in failed:
                rows.append(
                    {"cutoff": label, "model": model, "metric": "fit_failed", "value": 1.0}
                    | {"note": failed[model]}
                )
                continue
            subset = judged[judged["model"] == model]
            if subset.empty:
                continue
            metrics = model_metrics(subset)
            nonfinite = sum(j.nonfinite.get(model, 0) for j in members)
            chosen = ", ".join(dict.fromkeys(j.value_model for j in members if j.value_model))
            note = f"value model: {chosen}" if model == PROJECT and chosen else ""
            if model.startswith("lifetimes_"):
                metrics["nonfinite_forecasts"] = float(nonfinite)
            rows.extend(
                {"cutoff": label, "model": model, "metric": name, "value": value, "note": note}
                for name, value in metrics.items()
            )
    return pd.DataFrame(rows, columns=["cutoff", "model", "metric", "value", "note"])


def by_status_table(judgements: list[CutoffJudgement]) -> pd.DataFrame:
    """Per cut-off (and pooled): what each project status and each RFM segment did next."""
    tables = []
    for label, members in _groups(judgements):
        customers = pd.concat([j.customers for j in members], ignore_index=True)
        project = pd.concat(
            [j.forecasts[j.forecasts["model"] == PROJECT] for j in members], ignore_index=True
        )
        for grouping, column, forecast, order in (
            ("project status", "status", project, STATUSES),
            ("rfm segment", "rfm_segment", None, baselines.RFM_ORDER),
        ):
            table = forecast_metrics.group_outcomes(
                customers[column],
                customers["purchases"],
                customers["spend"],
                None if forecast is None else forecast["expected_spend"],
                forecast_purchases=None if forecast is None else forecast["expected_purchases"],
                order=order,
            )
            table.insert(0, "grouping", grouping)
            table.insert(0, "cutoff", label)
            tables.append(table)
    return pd.concat(tables, ignore_index=True)


def _per_model(judgements: list[CutoffJudgement], table_of) -> pd.DataFrame:
    """``table_of(outcomes of one model)`` per cut-off (and pooled) and model, in one table."""
    tables = []
    for label, members in _groups(judgements):
        judged = pd.concat([_with_outcomes(j) for j in members], ignore_index=True)
        for model, subset in judged.groupby("model", sort=False):
            tables.append(table_of(subset).assign(cutoff=label, model=model))
    table = pd.concat(tables, ignore_index=True)
    return table[["cutoff", "model", *table.columns.drop(["cutoff", "model"])]]


def calibration_table(judgements: list[CutoffJudgement]) -> pd.DataFrame:
    """The 10-bin reliability table per cut-off (and pooled) and model."""
    return _per_model(
        judgements,
        lambda judged: forecast_metrics.reliability_table(judged["bought"], judged["p_purchase"]),
    )


def deciles_table(judgements: list[CutoffJudgement]) -> pd.DataFrame:
    """Spend deciles of each model's forecast, per cut-off (and pooled)."""
    return _per_model(
        judgements,
        lambda judged: forecast_metrics.value_deciles(judged["spend"], judged["expected_spend"]),
    )


def trend_table(judgements: list[CutoffJudgement], *, horizon_days: int) -> pd.DataFrame:
    """Next-period spend against each customer's own past rate, per ``value_trend``."""
    tables = []
    for label, members in _groups(judgements):
        customers = pd.concat([j.customers for j in members], ignore_index=True)
        table = forecast_metrics.trend_outcomes(
            customers["value_trend"],
            customers["past_daily_spend"],
            customers["spend"],
            horizon_days,
        )
        tables.append(table.assign(cutoff=label))
    table = pd.concat(tables, ignore_index=True)
    return table[["cutoff", *table.columns.drop("cutoff")]]


def wins_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Pooled: the project beside each baseline, metric by metric, and whether it wins or loses.

    "wins" means better than every baseline that produced a figure, "loses" worse than at least
    one of them (the best is named).
    """
    pooled = metrics[(metrics["cutoff"] == POOLED) & (metrics["metric"] != "fit_failed")]
    wide = pooled.pivot_table(index="metric", columns="model", values="value", aggfunc="first")
    rows = []
    for metric, higher in HIGHER_IS_BETTER.items():
        if metric not in wide.index or PROJECT not in wide.columns:
            continue
        values = wide.loc[metric]
        project = values.get(PROJECT)
        others = {m: values.get(m) for m in MODELS[1:] if m in wide.columns}
        known = {m: v for m, v in others.items() if v is not None and pd.notna(v)}

        def goodness(value: float, higher: bool | None = higher) -> float:
            return value if higher else (-abs(value) if higher is None else -value)

        row = {"metric": metric, PROJECT: project, **others}
        if project is None or pd.isna(project) or not known:
            row.update(best_baseline="", verdict="no comparison")
        else:
            best = max(known, key=lambda m: goodness(known[m]))
            row["best_baseline"] = best
            gap = goodness(project) - goodness(known[best])
            row["verdict"] = "wins" if gap > 0 else ("ties" if gap == 0 else "loses")
        rows.append(row)
    columns = ["metric", PROJECT, *[m for m in MODELS[1:]], "best_baseline", "verdict"]
    return pd.DataFrame(rows).reindex(columns=columns)


# -- the edges -----------------------------------------------------------------------------------
@dataclass
class BacktestResult:
    cutoffs: list[pd.Timestamp]
    horizon_days: int
    source: str
    fingerprint: str
    judgements: list[CutoffJudgement]
    tables: dict[str, pd.DataFrame]

    @property
    def metrics(self) -> pd.DataFrame:
        return self.tables["backtest_metrics"]

    def tracked_metrics(self, cutoff: str = POOLED) -> dict[str, float]:
        """``model.metric`` -> value for one cut-off (or pooled): names stable across runs."""
        rows = self.metrics[self.metrics["cutoff"] == cutoff]
        return {
            f"{r.model}.{r.metric}": float(r.value) for r in rows.itertuples() if pd.notna(r.value)
        }


@dataclass(frozen=True)
class BacktestOutcome:
    result: BacktestResult
    output: Path
    run_id: str | None


def backtest_tables(
    judgements: list[CutoffJudgement], *, horizon_days: int
) -> dict[str, pd.DataFrame]:
    metrics = metrics_table(judgements)
    return {
        layout.BACKTEST_METRICS: metrics,
        layout.BACKTEST_BY_STATUS: by_status_table(judgements),
        "calibration": calibration_table(judgements),
        "backtest_deciles": deciles_table(judgements),
        layout.BACKTEST_VALUE_TREND: trend_table(judgements, horizon_days=horizon_days),
        "backtest_wins": wins_table(metrics),
    }


def run_backtest(
    config: Config,
    *,
    cutoffs: list[pd.Timestamp] | None = None,
    folds: int | None = None,
    horizon_days: int | None = None,
    on_progress: Progress | None = None,
) -> BacktestOutcome:
    """Fit at each cut-off as ``train`` does, judge every forecast, write and track the results.

    Raises
    ------
    pipeline.errors.InputError
        A cut-off with too little history, or whose horizon runs past the data; nothing written.
    """
    from pipeline import plots, report, tracking
    from pipeline.ingest import data_source, load_transactions
    from pipeline.tables import read_optional_tables
    from pipeline.train import fit_segmentation

    say = on_progress or (lambda message: None)
    horizon = horizon_days or config.horizon_days
    output = Path(config.output)
    io.check_output_target(output)
    if not config.data.transactions:
        io.check_output_target(config.embedded.directory, setting="embedded.directory")
    source = data_source(config)
    data_end = pd.Timestamp(config.as_of) if config.as_of else source.default_as_of
    say("reading and cleaning the whole file (the outcomes)")
    loaded = load_transactions(source.path, data=config.data, engine=config.engine, as_of=data_end)
    raw, full, fingerprint = loaded.raw, loaded.clean, loaded.fingerprint
    if not isinstance(full, CleanTransactions):
        raise ConfigError(
            "loyalty backtest runs on the duckdb engine with a file that fits in memory; "
            "set engine.name: duckdb"
        )
    first_day = full.transactions[TIMESTAMP].min().normalize()
    last_day = full.as_of
    chosen = (
        sorted(pd.Timestamp(c).normalize() for c in cutoffs)
        if cutoffs
        else rolling_cutoffs(last_day, folds=folds or 1, horizon_days=horizon)
    )
    check_cutoffs(
        chosen, first_day=first_day, last_day=last_day, horizon_days=horizon, source=source.path
    )

    judgements = []
    for number, cutoff in enumerate(chosen, start=1):

        def stage(name: str, number: int = number, cutoff: pd.Timestamp = cutoff) -> None:
            say(f"cut-off {number}/{len(chosen)} ({cutoff.date()}): {name}")

        stage("data")
        # The same cleaning as `train --as-of <cut-off>` (load_transactions on an in-memory file).
        clean = clean_transactions(raw, data=config.data, source=source.path, as_of=cutoff)
        history = customer_history(clean.transactions, cutoff=cutoff, horizon_days=horizon)
        summary = history[["frequency", "recency", "T", "monetary_value"]]
        # The as-is fits run in worker processes while the project fits here.
        pending = {
            kind: baselines.submit_lifetimes(summary, horizon, kind, seed=config.seed)
            for kind in (baselines.BGNBD, baselines.PARETO)
        }
        fold_config = config.model_copy(update={"as_of": cutoff.date(), "horizon_days": horizon})
        optional = read_optional_tables(config.data, as_of=clean.as_of)
        try:
            result = fit_segmentation(
                clean,
                fold_config,
                attributes=optional.attributes,
                loyalty=optional.loyalty,
                campaigns=optional.campaigns,
                on_stage=stage,
            )
        except InsufficientHistoryError as error:
            raise InputError(source.path, f"at cut-off {cutoff.date()}: {error}") from None
        stage("baselines (lifetimes as-is)")
        fitted = []
        for kind, future in pending.items():
            forecast = baselines.collect_lifetimes(future, kind=kind)
            if forecast.forecasts is not None:
                ids = history[CUSTOMER_ID].to_numpy()  # the fits ran in the history's row order
                forecast = replace(forecast, forecasts=forecast.forecasts.assign(customer_id=ids))
            fitted.append(forecast)
        stage("measuring")
        outcomes = next_period(
            full.transactions, result.segments[CUSTOMER_ID], cutoff=cutoff, horizon_days=horizon
        )
        judgements.append(
            judge_cutoff(
                cutoff,
                segments=result.segments,
                history=history,
                outcomes=outcomes,
                lifetimes=fitted,
                value_model=result.value_model_name,
            )
        )

    say("writing outputs")
    tables = backtest_tables(judgements, horizon_days=horizon)
    result = BacktestResult(chosen, horizon, source.path, fingerprint, judgements, tables)
    pngs = plots.render_pngs(plots.backtest_figures(tables))
    run_id = None
    with io.atomic_directory(output) as staging:
        for name, table in tables.items():
            io.write_frame(table, staging / layout.table_file(name))
        io.write_pngs(pngs, staging / layout.PLOTS)
        if config.tracking.enabled:
            say("logging to MLflow")
            run_id = tracking.log_backtest(result, config, output_dir=staging)
        html = report.render_backtest_report(result, pngs, run_id=run_id)
        io.write_text(html, staging / layout.BACKTEST_REPORT)
        if run_id:
            tracking.log_report(run_id, html, tracking_uri=config.tracking.tracking_uri)
        io.write_json(
            {
                "cutoffs": [str(c.date()) for c in chosen],
                "horizon_days": horizon,
                "source": source.path,
                "run_id": run_id,
            },
            staging / layout.BACKTEST_SUMMARY,
        )
    return BacktestOutcome(result, output, run_id)


# -- the README's tables -------------------------------------------------------------------------
def _markdown(frame: pd.DataFrame) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:,.3f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |"]
    lines.append("| " + " | ".join("---" for _ in frame.columns) + " |")
    lines.extend(
        "| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    )
    return "\n".join(lines)


def markdown_summary(output: Path, *, cutoff: str = POOLED) -> str:
    """The backtest's headline tables as markdown (for the README), from its output folder."""
    metrics = pd.read_csv(
        output / layout.table_file(layout.BACKTEST_METRICS), keep_default_na=False, na_values=[""]
    )
    by_status = pd.read_csv(output / layout.table_file(layout.BACKTEST_BY_STATUS))
    chosen = metrics[metrics["cutoff"].astype(str) == cutoff]
    failed = chosen[chosen["metric"] == "fit_failed"]
    wide = (
        chosen[chosen["metric"].isin(list(HIGHER_IS_BETTER))]
        .pivot_table(index="metric", columns="model", values="value", aggfunc="first")
        .reindex(index=[m for m in HIGHER_IS_BETTER if m in set(chosen["metric"])])
        .reindex(columns=[m for m in MODELS if m in set(chosen["model"])])
        .reset_index()
    )
    for model, note in zip(failed["model"], failed["note"], strict=True):
        wide[model] = ":".join(str(note).split(":")[:2])  # "failed: ConvergenceError"
    statuses = by_status[by_status["cutoff"].astype(str) == cutoff][
        [
            "grouping",
            "group",
            "customers",
            "share_buying_again",
            "lift",
            "mean_spend",
            "mean_forecast_spend",
            "share_of_revenue",
        ]
    ]
    wins = wins_table(chosen.assign(cutoff=POOLED)) if len(chosen) else pd.DataFrame()
    notes = [f"- {m}: {n}" for m, n in zip(failed["model"], failed["note"], strict=True)]
    project = chosen[(chosen["model"] == PROJECT) & (chosen["metric"] == "customers")]
    if len(project) and project["note"].iloc[0]:
        notes.append(f"- project {project['note'].iloc[0]}")
    parts = [_markdown(wide), *([""] + notes if notes else []), "", _markdown(statuses)]
    trend_path = output / layout.table_file(layout.BACKTEST_VALUE_TREND)
    if trend_path.exists():
        trend = pd.read_csv(trend_path)
        parts += [
            "",
            _markdown(trend[trend["cutoff"].astype(str) == cutoff].drop(columns="cutoff")),
        ]
    if not wins.empty:
        parts += ["", _markdown(wins[["metric", PROJECT, "best_baseline", "verdict"]])]
    return "\n".join(parts)
