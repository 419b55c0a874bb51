"""A self-contained HTML report of one training run: plots embedded, no external files.

Rendered from the run's results only (no I/O here): :mod:`pipeline.io` writes it and
:mod:`pipeline.tracking` logs it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from jinja2 import Environment, select_autoescape

from pipeline import layout
from pipeline.config import STATUSES, shipped_playbook
from pipeline.metric_names import LAST_PERIOD, PROJECT

if TYPE_CHECKING:
    from pipeline.model import TrainingResult
    from pipeline.tracking import TrackedRun

# One look for every report (training, backtest): the same page, cards and tables.
_STYLE = """
 body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1150px;
        color: #222; line-height: 1.45; padding: 0 1rem; }
 h1 { margin-bottom: .2rem; } h2 { margin-top: 2.4rem; border-bottom: 2px solid #eee; padding-bottom: .3rem; }
 .meta { color: #666; } .cards { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1rem 0; }
 .card { background: #f6f8fa; border-radius: 8px; padding: .7rem 1rem; min-width: 150px; }
 .card b { display: block; font-size: 1.4rem; }
 table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
 th, td { border-bottom: 1px solid #e5e5e5; padding: .3rem .6rem; text-align: right; vertical-align: top; }
 th { background: #fafafa; } td.text, th.text { text-align: left; }
 img { max-width: 100%; border: 1px solid #eee; border-radius: 6px; margin: .5rem 0; }
 .note { color: #555; font-size: .9rem; } .scroll { overflow-x: auto; }
"""

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Loyalty segmentation, as of {{ as_of }}</title>
<style>{{ style | safe }}</style></head><body>
<h1>Loyalty segmentation</h1>
<p class="meta">As of {{ as_of }} &middot; data: {{ source }} &middot; seed {{ seed }}
 {% if run_id %}&middot; MLflow run {{ run_id }}{% endif %}</p>
<div class="cards">
 {% for label, value in cards %}<div class="card">{{ label }}<b>{{ value }}</b></div>{% endfor %}
</div>

<h2>Promotion</h2>
<p><b>{{ promotion.verdict }}</b></p>
{{ promotion.gates | safe }}

<h2>Statuses: size and value</h2>
{{ summary | safe }}
<img alt="status sizes" src="{{ figures.status_sizes }}">

<h2>Who is in each status</h2>
<p class="note">Median of each signal per status; colour is the median percentile in the whole base.</p>
<img alt="status profiles" src="{{ figures.status_profiles }}">
{{ profiles | safe }}

<h2>Customer value and P(alive) per status</h2>
<img alt="clv per status" src="{{ figures.clv_by_status }}">
<img alt="p_alive per status" src="{{ figures.p_alive_by_status }}">
{% if figures.clv_holdout_calibration %}<img alt="holdout calibration" src="{{ figures.clv_holdout_calibration }}">{% endif %}
<p class="note">Value model used: <b>{{ value_model }}</b>. Candidates scored on the holdout:</p>
{{ clv_comparison | safe }}
{% if backtest %}<p class="note">The holdout beside the latest backtest on the same data
 (<code>loyalty backtest</code>: trained at past cut-offs, judged on what customers did next):</p>
{{ backtest | safe }}{% endif %}

<h2>How clusters were named</h2>
<p class="note">{{ k_reason }}</p>
{% if figures.k_selection %}<img alt="k selection" src="{{ figures.k_selection }}">{% endif %}
{{ k_evidence | safe }}
{{ mapping | safe }}
<p class="note">Customers whose status is not their cluster's name: customer rules, and members of
 mixed clusters (fewer than {{ purity }} of the members meet the cluster's status on their own), who
 take the status their own signals meet:</p>
{{ overrides | safe }}

<h2>Status changes since the champion</h2>
{% if changes.moves %}
<p class="note">The same customers under the champion (rows) and under this model (columns):
 {{ changes.changed }}.</p>
{% if figures.status_transitions %}<img alt="status transitions" src="{{ figures.status_transitions }}">{% endif %}
<p class="note">The largest movements (customers):</p>
<ul>{% for line in changes.moves %}<li>{{ line }}</li>{% endfor %}</ul>
{% else %}<p class="note">{{ changes.absent }}</p>{% endif %}

<h2>Data drift against the champion's training data</h2>
{% if drift.table %}<p class="note">Population stability index (PSI) of each feature: {{ drift.rule }}.</p>
{{ drift.table | safe }}{% else %}<p class="note">{{ drift.absent }}</p>{% endif %}

<h2>KPIs per status</h2>
<p class="note">Over the last {{ window_days }} days before the as-of date: retention = share of the
 customers who had bought before that window and bought again inside it (blank where nobody had);
 repeat rate = share with at least one repeat purchase; average spend per customer in the window.</p>
{{ kpis | safe }}
{% if by_definition %}<p class="note">Not shown, because the status's own definition makes them hold
 (a share of exactly 0% or 100% over a whole status): {{ by_definition }}.</p>{% endif %}
{% if figures.kpis_across_runs %}<img alt="KPIs across runs" src="{{ figures.kpis_across_runs }}">{% endif %}

<h2>What to do with each status</h2>
{{ playbook | safe }}
<h3>Sub-segments</h3>
{{ sub_segments | safe }}

{% if figures.planted_confusion %}
<h2>Planted statuses recovered</h2>
<p class="note">macro-F1 {{ planted_f1 }} on the embedded sample's planted truth.</p>
<img alt="planted confusion" src="{{ figures.planted_confusion }}">
{% endif %}
</body></html>
"""


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# Columns that hold a share of something: shown as percentages.
_SHARE_COLUMNS = ("share", "value_share", "retention", "repeat_rate", "members_agreeing")


def _number(value: float, *, share: bool, digits: int) -> str:
    """A readable number: percentages for shares, thousands separators, never 1.16e+03."""
    if pd.isna(value):
        return ""
    if share:
        return f"{value:.1%}"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:,.{digits}g}"


def _table(frame: pd.DataFrame, *, digits: int = 3) -> str:
    formatted = frame.copy()
    for column in formatted.columns:
        if pd.api.types.is_float_dtype(formatted[column]):
            share = column in _SHARE_COLUMNS or str(column).endswith("_share")
            formatted[column] = formatted[column].map(
                lambda v, share=share: _number(v, share=share, digits=digits)
            )
    text_columns = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    styler = formatted.style.hide(axis="index").set_properties(
        subset=text_columns, **{"text-align": "left"}
    )
    # Styler does not escape by default; every value here is data, so escape it.
    return f'<div class="scroll">{styler.format(escape="html", na_rep="").to_html()}</div>'


def render_report(
    result: TrainingResult,
    pngs: Mapping[str, bytes],
    *,
    run_id: str | None,
    source: str,
    tracked: TrackedRun | None = None,
) -> str:
    """The report as one HTML string."""
    segments, metrics = result.segments, result.metrics
    config = result.model.config
    present = [s for s in STATUSES if s in set(segments["status"])]
    profile_columns = [
        "repeat_purchases_per_year",
        "days_since_last_purchase",
        "overdue_ratio",
        "tenure_days",
        "avg_order_value",
        "p_alive",
        "expected_spend",
        "clv",
    ]
    profiles = segments.groupby("status")[profile_columns].median().reindex(present).reset_index()
    playbook = config.playbook if config.playbook is not None else shipped_playbook()
    counts = segments["status"].value_counts()
    playbook_table = pd.DataFrame(
        [
            {
                "status": status,
                "customers": int(counts.get(status, 0)),
                "action": entry.action,
                "channel": entry.channel,
                "least days between contacts": entry.cadence_days,
                "median contact every (days)": segments.loc[
                    segments["status"] == status, "contact_every_days"
                ].median(),
            }
            for status, entry in playbook.items()
        ]
    )
    named_clusters = result.cluster_profiles
    purity = named_clusters["members_agreeing"]
    mapping = pd.DataFrame(
        {
            "cluster": named_clusters["cluster"],
            "customers": named_clusters["customers"],
            "status": named_clusters["status"],
            "members agreeing": purity.map(lambda share: f"{share:.0%}", na_action="ignore"),
            # A mixed cluster's name is shown, but its members each take their own status.
            "names its members": np.where(
                purity < config.labeling.min_cluster_purity, "no: mixed", "yes"
            ),
            "why": named_clusters["status_reason"],
        }
    )
    cards = [
        ("customers", f"{len(segments):,}"),
        (
            f"expected spend, next {config.horizon_days} days",
            f"{segments['expected_spend'].sum():,.0f}",
        ),
        ("clusters", f"{int(metrics.get('n_clusters', 0))}"),
        (
            "status stability across seeds (ARI)",
            f"{metrics.get('seed_stability_ari', float('nan')):.3f}",
        ),
        ("holdout spend Gini", f"{metrics.get('holdout_spend_gini', float('nan')):.3f}"),
    ]
    kpis, by_definition = kpis_without_definitional(
        result.tables.get("labeling_kpis", pd.DataFrame())
    )
    environment = Environment(autoescape=select_autoescape(default=True))
    template = environment.from_string(_TEMPLATE)
    tables = result.tables
    return template.render(
        style=_STYLE,
        as_of=str(config.as_of),
        source=source,
        seed=config.seed,
        run_id=run_id,
        cards=cards,
        summary=_table(result.summary),
        profiles=_table(profiles),
        clv_comparison=_table(tables.get("clv_model_comparison", pd.DataFrame())),
        backtest=_table(tables["clv_backtest_vs_holdout"])
        if "clv_backtest_vs_holdout" in tables
        else "",
        value_model=result.value_model_name,
        k_reason=result.k_reason,
        k_evidence=_table(tables["k_selection"]) if "k_selection" in tables else "",
        mapping=_table(mapping),
        overrides=_table(tables.get("labeling_overrides", pd.DataFrame())),
        purity=f"{config.labeling.min_cluster_purity:.0%}",
        playbook=_table(playbook_table),
        sub_segments=_table(tables.get("labeling_sub_segments", pd.DataFrame())),
        kpis=_table(kpis),
        by_definition=by_definition,
        promotion=promotion_section(tracked),
        changes=changes_section(result),
        drift=drift_section(result, threshold=config.monitoring.drift_warn_psi),
        window_days=config.features.recent_window_days,
        figures={name: png_data_uri(png) for name, png in pngs.items()},
        planted_f1=f"{metrics['planted_macro_f1']:.3f}" if "planted_macro_f1" in metrics else "",
    )


# -- backtest ------------------------------------------------------------------------------------
_BACKTEST_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Loyalty backtest, {{ cutoffs }}</title>
<style>{{ style | safe }} .failed { color: #b00; }</style></head><body>
<h1>How good are the statuses?</h1>
<p class="meta">Cut-offs {{ cutoffs }} &middot; horizon {{ horizon }} days &middot; data: {{ source }}
 {% if run_id %}&middot; MLflow run {{ run_id }}{% endif %}</p>
<p class="note">At each cut-off the project was trained on the data up to it, exactly as
 <code>loyalty train --as-of</code> would; every customer's forecast is compared with what they did
 in the next {{ horizon }} days. Baselines: <b>last_period_again</b> (who bought in the last
 {{ horizon }} days buys again, as much as then), <b>lifetimes_bgnbd</b> and <b>lifetimes_pareto</b>
 (lifetimes with default settings + Gamma-Gamma), and the classic RFM segment map.</p>
<div class="cards">
 {% for label, value in cards %}<div class="card">{{ label }}<b>{{ value }}</b></div>{% endfor %}
</div>
{% for line in failures %}<p class="failed">{{ line }}</p>{% endfor %}
<p class="note">Value model the project chose at each cut-off: {{ value_models }}.</p>

<h2>Where the project wins and where it loses</h2>
<p class="note">All cut-offs pooled. "wins": better than every baseline with a figure; "loses": worse
 than the one named. Aggregate errors are judged by their distance from 0.</p>
{{ wins | safe }}

<h2>Purchase probability: does P(buys again) separate and match who bought?</h2>
<img alt="reliability" src="{{ figures.reliability }}">
{{ probability | safe }}

<h2>Value: do the spend and purchase forecasts rank and size customers?</h2>
<img alt="deciles" src="{{ figures.spend_deciles }}">
{{ value | safe }}

<h2>What each status did next</h2>
<p class="note">Share buying again, purchases and spend in the next {{ horizon }} days per project
 status and per classic RFM segment; lift = share buying again / the whole base's.</p>
<img alt="lift by status" src="{{ figures.lift_by_status }}">
{{ by_status | safe }}

<h2>Value trend: did declining customers spend below their own past rate?</h2>
<p class="note">Own rate = the customer's spend per day from their first purchase to the cut-off,
 times the horizon. actual_vs_own_rate below 1: the group spent less than its past rate.</p>
{{ trend | safe }}

<h2>Each cut-off</h2>
{{ per_cutoff | safe }}
</body></html>
"""

_PROBABILITY_METRICS = (
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
    "ece",
    "base_rate",
    "mean_probability",
)
_VALUE_METRICS = (
    "spend_spearman",
    "spend_gini",
    "spend_mae",
    "spend_rmse",
    "spend_aggregate_error_pct",
    "purchases_spearman",
    "purchases_gini",
    "purchases_mae",
    "purchases_rmse",
    "purchases_aggregate_error_pct",
)


def _metric_grid(metrics: pd.DataFrame, names: tuple[str, ...], models: list[str]) -> pd.DataFrame:
    chosen = metrics[metrics["metric"].isin(names)]
    wide = chosen.pivot_table(index="metric", columns="model", values="value", aggfunc="first")
    wide = wide.reindex(index=[n for n in names if n in wide.index], columns=models)
    return wide.rename_axis(None, axis=1).reset_index()


def render_backtest_report(result, pngs: Mapping[str, bytes], *, run_id: str | None) -> str:
    """The backtest as one self-contained HTML string (``result``: a BacktestResult)."""
    tables = result.tables
    metrics = tables["backtest_metrics"]
    pooled = metrics[metrics["cutoff"] == "pooled"]
    models = list(dict.fromkeys(metrics["model"]))
    failed = pooled[pooled["metric"] == "fit_failed"]
    failures = [f"{m}: {note}" for m, note in zip(failed["model"], failed["note"], strict=True)]

    def pooled_value(model: str, metric: str) -> str:
        row = pooled[(pooled["model"] == model) & (pooled["metric"] == metric)]
        return f"{row['value'].iloc[0]:.3f}" if len(row) else "-"

    cards = [
        ("customers judged", f"{int(float(pooled_value('project', 'customers'))):,}"),
        ("ROC AUC, project", pooled_value("project", "roc_auc")),
        ("ROC AUC, last period again", pooled_value("last_period_again", "roc_auc")),
        ("spend Gini, project", pooled_value("project", "spend_gini")),
        ("spend Gini, last period again", pooled_value("last_period_again", "spend_gini")),
    ]
    by_status = tables[layout.BACKTEST_BY_STATUS]
    trend = tables[layout.BACKTEST_VALUE_TREND]
    per_cutoff = metrics[metrics["cutoff"] != "pooled"]
    per_cutoff = per_cutoff[
        per_cutoff["metric"].isin(("roc_auc", "brier", "spend_gini", "spend_aggregate_error_pct"))
    ]
    per_cutoff = per_cutoff.pivot_table(
        index=["cutoff", "metric"], columns="model", values="value", aggfunc="first"
    ).reindex(columns=models)
    environment = Environment(autoescape=select_autoescape(default=True))
    return environment.from_string(_BACKTEST_TEMPLATE).render(
        style=_STYLE,
        cutoffs=", ".join(str(c.date()) for c in result.cutoffs),
        horizon=result.horizon_days,
        source=result.source,
        run_id=run_id,
        cards=cards,
        failures=failures,
        value_models=", ".join(f"{j.cutoff.date()} {j.value_model}" for j in result.judgements),
        wins=_table(tables["backtest_wins"]),
        probability=_table(_metric_grid(pooled, _PROBABILITY_METRICS, models)),
        value=_table(_metric_grid(pooled, _VALUE_METRICS, models)),
        by_status=_table(by_status[by_status["cutoff"] == "pooled"].drop(columns="cutoff")),
        trend=_table(trend[trend["cutoff"] == "pooled"].drop(columns="cutoff")),
        per_cutoff=_table(per_cutoff.rename_axis(None, axis=1).reset_index()),
        figures={name: png_data_uri(png) for name, png in pngs.items()},
    )


# KPIs that are shares of a status's customers; one at exactly 0 or 1 over a whole status is
# forced by the status's definition (active and loyal customers bought in the recent window, so
# their retention is 100%), not something the data found.
_DEFINITIONAL_KPIS = ("retention", "repeat_rate")


def kpis_without_definitional(kpis: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The KPI table with the cells that hold by construction blanked, and a sentence naming
    them (empty when none)."""
    if kpis.empty or "status" not in kpis.columns:
        return kpis, ""
    kpis = kpis.copy()
    named = []
    for column in _DEFINITIONAL_KPIS:
        if column not in kpis.columns:
            continue
        forced = kpis[column].isin([0.0, 1.0])
        named.extend(
            f"{column.replace('_', ' ')} of {status} ({value:.0%})"
            for status, value in zip(
                kpis.loc[forced, "status"], kpis.loc[forced, column], strict=True
            )
        )
        kpis.loc[forced, column] = np.nan
    return kpis, ", ".join(named)


def promotion_section(tracked: TrackedRun | None) -> dict[str, str]:
    """Whether the model became champion, and every gate's verdict with its evidence."""
    if tracked is None:
        return {
            "verdict": "Not tracked (--no-tracking): nothing was registered or promoted.",
            "gates": "",
        }
    if tracked.model_version is None:
        return {"verdict": "No model version was registered.", "gates": ""}
    failed = [g.name for g in tracked.gates if g.passed is False]
    if tracked.promoted:
        verdict = f"Model version {tracked.model_version} became the champion."
    elif failed:
        verdict = (
            f"Model version {tracked.model_version} was held back by gate "
            f"{', '.join(failed)}: it stays challenger; the champion is unchanged."
        )
    else:
        verdict = f"Model version {tracked.model_version} was not promoted: it stays challenger."
    gates = pd.DataFrame(
        [{"gate": g.name, "verdict": g.verdict, "evidence": g.detail} for g in tracked.gates]
    )
    return {"verdict": verdict, "gates": _table(gates) if not gates.empty else ""}


def changes_section(result: TrainingResult, *, top: int = 8) -> dict[str, Any]:
    """The share of customers whose status changed since the champion, and the largest named
    movements (``loyal -> at_risk: 120``); ``absent`` says why there is nothing to show."""
    metrics = result.metrics
    moves = sorted(
        (
            (value, name.removeprefix("moved_").replace("_to_", " \u2192 "))
            for name, value in metrics.items()
            if name.startswith("moved_") and value > 0
        ),
        reverse=True,
    )
    if "transition_customers_compared" not in metrics:
        return {"moves": [], "absent": "No champion to compare with (the first tracked training)."}
    changed = (
        f"{metrics.get('transition_changed_share', 0.0):.1%} of "
        f"{int(metrics['transition_customers_compared']):,} customers changed status"
    )
    return {
        "moves": [f"{label}: {int(value):,}" for value, label in moves[:top]],
        "changed": changed,
        "absent": "No customer changed status since the champion.",
    }


def drift_section(result: TrainingResult, *, threshold: float) -> dict[str, str]:
    """The per-feature PSI table against the champion's training data, when there is one."""
    table = result.tables.get("data_drift")
    if table is None or table.empty:
        return {
            "table": "",
            "absent": "No champion with a training-data reference to compare with.",
        }
    return {
        "table": _table(table),
        # PSI above 0.1 is a moderate shift and above 0.25 a major one (Siddiqi, 2006); the
        # threshold used here is monitoring.drift_warn_psi.
        "rule": f"above {threshold:g} the feature's distribution has moved enough to check",
    }


# -- the training report's view ------------------------------------------------------------------
# The holdout's figures (as `train` logs them) and the backtest's that answer the same question.
HOLDOUT_BESIDE_BACKTEST = (
    ("spend Spearman", "holdout_spend_spearman", "spend_spearman"),
    ("spend normalized Gini", "holdout_spend_gini", "spend_gini"),
    ("spend aggregate error %", "holdout_spend_aggregate_error_pct", "spend_aggregate_error_pct"),
    ("spend MAE", "holdout_spend_mae", "spend_mae"),
    (
        "purchases aggregate error %",
        "holdout_purchases_aggregate_error_pct",
        "purchases_aggregate_error_pct",
    ),
    ("purchases MAE", "holdout_purchases_mae", "purchases_mae"),
)


def holdout_beside_backtest(
    training_metrics: dict[str, float], backtest: dict[str, object]
) -> pd.DataFrame:
    """The training holdout's value-model figures beside the latest backtest's (pooled).

    ``backtest`` is :func:`pipeline.tracking.latest_backtest`'s answer. Where the two aggregate
    errors have opposite signs, the row says so: the holdout then misjudged the direction.
    """
    metrics = backtest["metrics"]
    label = f"backtest {backtest['cutoffs']} ({backtest['horizon_days']} days)"
    rows = []
    for measure, holdout_name, backtest_name in HOLDOUT_BESIDE_BACKTEST:
        holdout = training_metrics.get(holdout_name, float("nan"))
        project = metrics.get(f"{PROJECT}.{backtest_name}", float("nan"))
        opposite = (
            "aggregate" in measure
            and pd.notna(holdout)
            and pd.notna(project)
            and np.sign(holdout) != np.sign(project)
        )
        note = "opposite signs: the holdout misjudged the direction" if opposite else ""
        rows.append(
            {
                "measure": measure,
                "training holdout": holdout,
                label: project,
                "last horizon again, same backtest": metrics.get(
                    f"{LAST_PERIOD}.{backtest_name}", float("nan")
                ),
                "note": note,
            }
        )
    return pd.DataFrame(rows)
