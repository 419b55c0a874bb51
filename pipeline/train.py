"""Training: the stages composed in one visible place.

`fit_segmentation` is the whole model, from clean transactions to the segment table, with no
I/O. `run_training` adds the edges: reading and validating the input, writing outputs
atomically, keeping the last good model, and tracking the run in MLflow.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from pipeline import io, layout, plots, report, tracking
from pipeline.actions import rank_reference
from pipeline.clustering import KChoice, cluster_metrics, fit_clusters, selection_sample
from pipeline.clv import warm_isolated_workers
from pipeline.conditions import ranked_columns
from pipeline.config import ClusteringConfig, Config, LabelingConfig, load_rules
from pipeline.customer_value import (
    HoldoutWindows,
    ValueSelection,
    holdout_days_for,
    holdout_windows,
    naive_window_days,
    plan_windows,
    select_value_model,
    settings_with_window,
)
from pipeline.engine import connect
from pipeline.errors import (
    InputError,
    InsufficientHistoryError,
    TrackingError,
    UserFacingError,
    quote,
)
from pipeline.evaluate import (
    distribution_reference,
    drift_check,
    kpis_across_runs,
    planted_recovery,
    refinements,
    status_kpis,
    status_shares,
    status_summary,
    status_transitions,
)
from pipeline.features import customer_history, population_gap_prior
from pipeline.ingest import DataSource, data_source, load_transactions
from pipeline.labeling import CLUSTER, StatusLabeler
from pipeline.model import (
    SegmentationModel,
    TrainingResult,
    assemble_segments,
    playbook_rules,
    sub_segment_rules,
)
from pipeline.schema import CUSTOMER_ID, CleanEvents, CleanLines
from pipeline.tables import OptionalTables, read_optional_tables
from pipeline.threads import limit_threads, resolve_threads

log = logging.getLogger(__name__)

StageCallback = Callable[[str], None]


def make_labeler(labeling: LabelingConfig) -> StatusLabeler:
    """The status labeler the config asks for (the shipped rules unless it gives its own)."""
    shipped = load_rules()
    return StatusLabeler(
        cluster_rules=labeling.cluster_rules
        if labeling.cluster_rules is not None
        else shipped["cluster_rules"],
        customer_rules=labeling.customer_rules
        if labeling.customer_rules is not None
        else shipped["customer_rules"],
        default_status=labeling.default_status,
        parameters={
            "new_window_days": labeling.new_window_days,
            "established_days": labeling.established_days,
            "lost_p_purchase": labeling.lost_p_purchase,
        },
        naming=labeling.cluster_naming,
        min_cluster_purity=labeling.min_cluster_purity,
    )


def with_activity_windows(config: Config, *days: int) -> Config:
    """``config`` with ``days`` among its activity windows (the naive rule's windows)."""
    features = settings_with_window(config.features, *days)
    return (
        config if features is config.features else config.model_copy(update={"features": features})
    )


def label_clusters(
    signals: pd.DataFrame, clusters: np.ndarray, labeling: LabelingConfig
) -> tuple[StatusLabeler, pd.DataFrame]:
    """Fit the labeler on per-customer signals and their clusters; return it and the statuses."""
    with_clusters = signals.assign(**{CLUSTER: clusters})
    labeler = make_labeler(labeling).fit(with_clusters)
    return labeler, labeler.predict(with_clusters)


@dataclass(frozen=True)
class TrainingInputs:
    """What the feature stage hands the models: each buyer's features at the as-of date, the
    holdout windows the value models are judged on, and the config with the windows added."""

    config: Config
    features: pd.DataFrame
    windows: HoldoutWindows
    naive_days: int


def training_inputs(clean: CleanLines, config: Config, optional: OptionalTables) -> TrainingInputs:
    """Features and holdout windows, every engine query in one go.

    The engine is closed before any model is fitted, so the two never compete for the cores.
    """
    as_of = clean.as_of
    with connect(config.engine) as engine:
        history = customer_history(engine, clean, config.features, **optional.events())
        # The holdout's window is also a feature ("the last window again" is a candidate and an
        # input of the learned model): it joins the activity windows, so that the bundle's
        # config computes it again at scoring.
        holdout_days = holdout_days_for(config.clv, config.horizon_days)
        first_day = history.first_day()
        window_days, *_ = plan_windows(first_day=first_day, as_of=as_of, holdout_days=holdout_days)
        naive_days = naive_window_days(
            first_day=first_day, as_of=as_of, horizon_days=config.horizon_days
        )
        config = with_activity_windows(config, window_days, naive_days)
        history = replace(history, settings=config.features)
        features = history.features(as_of)
        windows = holdout_windows(
            history, as_of=as_of, holdout_days=holdout_days, first_day=first_day
        )
    return TrainingInputs(config, features, windows, naive_days)


def fit_segmentation(
    clean: CleanLines,
    config: Config,
    *,
    attributes: pd.DataFrame | None = None,
    loyalty: CleanEvents | None = None,
    campaigns: CleanEvents | None = None,
    on_stage: StageCallback | None = None,
) -> TrainingResult:
    """Fit every stage on clean transactions and segment the same customers.

    features -> clusters -> customer value (BTYD, naive, learned) -> statuses. The optional
    tables (customer ``attributes``, ``loyalty`` events, ``campaigns`` interactions) add their
    columns to the buyers' rows; their row accounting goes into the data stage's metrics.
    """
    stage = on_stage or (lambda name: None)
    as_of, seed = clean.as_of, config.seed
    optional = OptionalTables(attributes=attributes, loyalty=loyalty, campaigns=campaigns)

    warm_isolated_workers()  # the value stage's fit workers start while features are built
    stage("features")
    inputs = training_inputs(clean, config, optional)
    config, features = inputs.config, inputs.features
    prior_gap_days = population_gap_prior(features)

    stage("clustering")
    threads = resolve_threads(config.threads)
    clusterer, clusters, k_choice = fit_clusters(
        features, config.clustering, random_state=seed, threads=threads
    )

    stage("clv")
    selection = select_value_model(
        inputs.windows,
        features,
        config=config.clv,
        trend_window_days=config.features.recent_window_days,
        random_state=seed,
        naive_days=inputs.naive_days,
    )
    values = selection.forecaster.predict(features, horizon_days=config.horizon_days)

    stage("labeling")
    signals = pd.concat([features, values.reset_index(drop=True)], axis=1)
    labeler, statuses = label_clusters(signals, clusters, config.labeling)
    stability = {}
    if config.clustering.check_seed_stability:
        fixed_k = config.clustering.model_copy(update={"n_clusters": int(clusters.max()) + 1})
        stability["seed_stability_ari"] = seed_stability(
            signals, statuses["status"], fixed_k, config.labeling, seed=seed, threads=threads
        )
    # Sub-segments rank customers within the training population, at training as at scoring.
    rules = sub_segment_rules(config)
    ranks = rank_reference(
        signals.merge(attributes, on=CUSTOMER_ID, how="left")
        if attributes is not None
        else signals,
        ranked_columns(rule.when for rule in rules),
    )
    segments = assemble_segments(
        features,
        clusters,
        values,
        statuses,
        as_of=as_of,
        sub_segments=rules,
        playbook=playbook_rules(config),
        attributes=attributes,
        rank_reference=ranks,
    )
    model = SegmentationModel(
        config=config,
        trained_as_of=as_of,
        prior_gap_days=prior_gap_days,
        clusterer=clusterer,
        value_model=selection.forecaster,
        labeler=labeler,
        feature_reference=distribution_reference(features),
        rank_reference=ranks,
    )
    kpi_table, kpis = status_kpis(segments, recent_window_days=config.features.recent_window_days)
    clustering_metrics = cluster_metrics(
        clusterer,
        features,
        clusters,
        sample_size=config.clustering.silhouette_sample_size,
        random_state=seed,
    )
    return TrainingResult(
        segments=segments,
        model=model,
        stage_metrics=training_metrics(
            clean,
            segments,
            optional=optional,
            prior_gap_days=prior_gap_days,
            clustering={**clustering_metrics, **stability},
            value=selection.metrics,
            kpis=kpis,
        ),
        cluster_profiles=labeler.cluster_profiles_.reset_index(),
        summary=status_summary(segments),
        tables=training_tables(
            segments, selection, k_choice, kpi_table=kpi_table, optional=optional
        ),
        value_model_name=selection.chosen,
        k_reason=k_choice.reason if k_choice is not None else "k fixed by the config",
    )


def training_metrics(
    clean: CleanLines,
    segments: pd.DataFrame,
    *,
    optional: OptionalTables,
    prior_gap_days: float,
    clustering: dict[str, float],
    value: dict[str, float],
    kpis: dict[str, float],
) -> dict[str, dict[str, float]]:
    """Each stage's metrics, as MLflow logs them (grouped by :mod:`pipeline.metric_names`)."""
    return {
        "data": {
            "rows_in": float(clean.rows_in),
            "rows_used": float(clean.rows_used),
            "rows_quarantined": float(clean.rows_quarantined),
            **{f"quarantined_{k}": float(v) for k, v in clean.counts_by_reason().items()},
            "customers": float(len(segments)),
            "prior_gap_days": prior_gap_days,
            **optional.metrics(),
        },
        "clustering": clustering,
        "clv": {
            **value,
            "mean_p_alive": float(segments["p_alive"].mean()),
            "mean_p_purchase": float(segments["p_purchase"].mean()),
            "total_expected_spend": float(segments["expected_spend"].sum()),
            # A share of value (what a marketer's budget follows) and of customers.
            "share_declining_value": _value_share(segments, segments["value_trend"] == "declining"),
            "share_declining_customers": float((segments["value_trend"] == "declining").mean()),
        },
        "labeling": {
            **status_shares(segments),
            "customer_rule_overrides": float((segments["status_source"] == "customer_rule").sum()),
            "own_signal_statuses": float((segments["status_source"] == "own_signals").sum()),
            "sub_segmented_share": float(segments["sub_segment"].notna().mean()),
            "statuses_found": float(segments["status"].nunique()),
            **kpis,
        },
    }


def training_tables(
    segments: pd.DataFrame,
    selection: ValueSelection,
    k_choice: KChoice | None,
    *,
    kpi_table: pd.DataFrame,
    optional: OptionalTables,
) -> dict[str, pd.DataFrame]:
    """The tables a training logs and reports beside its segment table."""
    tables = {
        "clv_model_comparison": selection.comparison,
        "labeling_kpis": kpi_table,
        "labeling_sub_segments": segments["sub_segment"]
        .value_counts()
        .rename_axis("sub_segment")
        .reset_index(name="customers"),
        "labeling_overrides": refinements(segments),
    }
    for name, events in (("loyalty", optional.loyalty), ("campaigns", optional.campaigns)):
        if events is not None and not events.set_aside.empty:
            tables[f"data_{name}_set_aside"] = events.set_aside
    if k_choice is not None:
        tables["k_selection"] = k_choice.evidence
    if selection.deciles is not None:
        tables["clv_holdout_deciles"] = selection.deciles
    return tables


def _value_share(segments: pd.DataFrame, chosen: pd.Series) -> float:
    """Share of the past year's spend rate held by the ``chosen`` customers."""
    value = segments["total_spend"] / segments["tenure_days"].clip(lower=1.0)
    total = float(value.sum())
    return float(value[chosen].sum() / total) if total > 0 else 0.0


# -- the edges: data in, outputs out ------------------------------------------------------------
@dataclass(frozen=True)
class TrainingOutcome:
    result: TrainingResult | None
    output: Path
    tracked: tracking.TrackedRun | None
    source: DataSource
    skipped_for: str | None = None  # the earlier identical run, when an idempotent run skipped


def run_training(
    config: Config,
    *,
    trigger: str = "manual",
    idempotent: bool = False,
    on_stage: StageCallback | None = None,
) -> TrainingOutcome:
    """Read, validate, fit, write the outputs atomically and track the run.

    One training at a time: a lock beside the model bundle is held throughout. With
    ``idempotent``, a finished run with the same data fingerprint, config and as-of date is not
    repeated: the outcome names it and nothing is written.

    Raises
    ------
    pipeline.errors.InputError
        The input cannot be used; nothing has been written.
    pipeline.errors.LockedError
        Another training is running.
    """
    with limit_threads(config.threads):
        return _run_training(config, trigger=trigger, idempotent=idempotent, on_stage=on_stage)


def _run_training(
    config: Config, *, trigger: str, idempotent: bool, on_stage: StageCallback | None
) -> TrainingOutcome:
    stage_started_ms: dict[str, int] = {}
    report_stage = on_stage or (lambda name: None)

    def stage(name: str) -> None:
        stage_started_ms[name] = int(time.time() * 1000)
        report_stage(name)

    stage("data")
    # Refused before any work: an output folder that is not ours, or that cannot be written,
    # and a tracking store that does not answer or cannot be written (seconds, not after the fit).
    io.check_output_target(Path(config.output))
    io.check_output_target(held_back_directory(config))
    if not config.data.transactions:
        io.check_output_target(config.embedded.directory, setting="embedded.directory")
    if config.tracking.enabled:
        tracking.check_tracking_store(config.tracking.tracking_uri, create=True)
    source = data_source(config)
    as_of = pd.Timestamp(config.as_of) if config.as_of else source.default_as_of
    # The raw table is not kept: MLflow records the input by its place and fingerprint.
    loaded = load_transactions(source.path, data=config.data, engine=config.engine, as_of=as_of)
    clean, fingerprint = loaded.clean, loaded.fingerprint
    # The resolved as-of goes into the bundle's config, so a reload knows what it was fitted on.
    config = config.model_copy(update={"as_of": clean.as_of.date()})
    # The optional tables (customers, loyalty events, campaigns) are read before the run key is
    # made: a changed loyalty file is new data, as changed transactions are.
    optional = read_optional_tables(config.data, as_of=clean.as_of)
    # The thread count changes how fast, never what: the same run whatever it is.
    keyed = f"{fingerprint}|{config.model_dump_json(exclude={'threads'})}"
    if optional.fingerprint:
        keyed += f"|{optional.fingerprint}"
    run_key = hashlib.sha256(keyed.encode()).hexdigest()[:16]
    # One training per model path at a time, taken once the input is known good: a second
    # config's bad file gets its own error, not "locked".
    with io.exclusive_lock(training_lock(config), remove_created_on=UserFacingError):
        return _train_locked(
            config,
            source=source,
            clean=clean,
            optional=optional,
            fingerprint=fingerprint,
            run_key=run_key,
            trigger=trigger,
            idempotent=idempotent,
            stage=stage,
            stage_started_ms=stage_started_ms,
        )


def _train_locked(
    config: Config,
    *,
    source: DataSource,
    clean: CleanLines,
    optional: OptionalTables,
    fingerprint: str,
    run_key: str,
    trigger: str,
    idempotent: bool,
    stage: StageCallback,
    stage_started_ms: dict[str, int],
) -> TrainingOutcome:
    if config.tracking.enabled:
        repair_earlier_runs(config)
    if idempotent and config.tracking.enabled:
        try:
            existing = tracking.finished_run_with_key(config.tracking, run_key)
        except tracking.TRACKING_FAILURES as error:  # before the fit: stop, nothing is lost
            raise tracking.TrackingUnavailable(
                f"cannot search the tracking store for an earlier identical run "
                f"({_one_line(error)}); fix --tracking-uri or train with --no-tracking"
            ) from None
        if existing is not None:
            return TrainingOutcome(None, Path(config.output), None, source, skipped_for=existing)
    if config.tracking.enabled:
        tracking.prepare_model_logging()
    try:
        result = fit_segmentation(
            clean,
            config,
            attributes=optional.attributes,
            loyalty=optional.loyalty,
            campaigns=optional.campaigns,
            on_stage=stage,
        )
    except InsufficientHistoryError as error:
        raise InputError(source.path, str(error)) from None
    result.model.metadata.update(
        {
            "data_fingerprint": fingerprint,
            "source": source.path,
            "trigger": trigger,
            "run_key": run_key,
        }
    )
    # The planted truth describes customers as of the sample's end; at another as-of date
    # (a backtest) it is not the right answer, so recovery is not measured there.
    if source.truth_path is not None and clean.as_of == source.default_as_of:
        truth = pd.read_csv(source.truth_path, dtype={"customer_id": "string"})
        recovery, confusion = planted_recovery(result.segments, truth)
        result.stage_metrics["labeling"].update(recovery)
        result.confusion = confusion

    if config.tracking.enabled:
        try:
            _compare_with_champion(result, config, source=source, clean=clean)
        except tracking.TRACKING_FAILURES as error:  # monitoring only: the fit is kept
            log.warning("cannot compare with the champion in MLflow: %s", _one_line(error))

    stage("outputs")
    tracking_error: Exception | None = None
    with io.staging_directory(Path(config.output)) as staging:
        pngs = write_training_files(staging, result, clean=clean, source=source.path)
        tracked = None
        if config.tracking.enabled:
            stage("tracking")
            try:
                tracked = tracking.log_training(
                    result,
                    config,
                    output_dir=staging,
                    data=None,
                    data_fingerprint=result.model.metadata["data_fingerprint"],
                    source=source.path,
                    trigger=trigger,
                    stage_started_ms=stage_started_ms,
                )
            except tracking.TRACKING_FAILURES as error:  # the store, not our code: keep the model
                log.info("logging to MLflow failed", exc_info=True)
                tracking_error = error
        fault_point("after_registry")
        if tracked:
            io.write_json(
                {
                    "run_id": tracked.run_id,
                    "model_version": tracked.model_version,
                    "promoted": tracked.promoted,
                    "gates": {g.name: f"{g.verdict}: {g.detail}" for g in tracked.gates},
                },
                staging / layout.RUN,
            )
        html = report.render_report(
            result,
            pngs,
            run_id=tracked.run_id if tracked else None,
            source=source.path,
            tracked=tracked,
        )
        is_champion = tracking_error is None and (tracked is None or tracked.promoted)
        html = with_verdict(html, verdict_line(tracked, tracking_error))
        io.write_text(html, staging / layout.REPORT)
        if tracked:
            try:
                tracking.log_report(tracked.run_id, html, tracking_uri=config.tracking.tracking_uri)
            except tracking.TRACKING_FAILURES as error:  # the report is also in the outputs
                log.warning("cannot attach the report to run %s: %s", tracked.run_id, error)
        # The champion's outputs go to --output and its bundle to model_path; a held-back (or
        # untracked) model goes to its own folder and leaves both as they were.
        output = Path(config.output) if is_champion else held_back_directory(config)
        io.publish_directory(staging, output)
    fault_point("after_outputs")
    if is_champion:
        io.publish_copy(output / layout.BUNDLE, config.model_path)
        fault_point("after_bundle")
        if tracked and tracked.model_version is not None:
            tracking.mark_publication(config.tracking, tracked.model_version, "done")
    if config.history_path is not None:
        history = result.segments[["customer_id", "as_of", "status"]].assign(
            run_id=tracked.run_id if tracked else pd.NA
        )
        io.append_frame(history.astype({"run_id": "string"}), config.history_path)
    if tracking_error is not None:
        raise TrackingError(
            f"the model was fitted and kept in {output}/ (model.joblib, segments.parquet, "
            f"report.html), but MLflow could not record it ({_one_line(tracking_error)}); "
            f"{config.model_path} and {config.output}/ are unchanged. Once the tracking store "
            "answers, run the same command again to track and publish it (or use the kept "
            f"bundle directly: loyalty score --model {output / layout.BUNDLE})"
        )
    return TrainingOutcome(result, output, tracked, source)


def repair_earlier_runs(config: Config) -> None:
    """What killed runs left: RUNNING runs end as KILLED, a half-done publication is completed
    or rolled back, before anything else reads the registry. A repair that fails now is
    retried by the next run, so it only warns."""
    try:
        tracking.mark_stale_runs(config.tracking)
        recover_publication(config)
    except tracking.TRACKING_FAILURES as error:
        log.warning("cannot repair what earlier runs left in MLflow: %s", _one_line(error))


def write_training_files(
    staging: Path, result: TrainingResult, *, clean: CleanLines, source: str
) -> dict[str, bytes]:
    """A training's files (segment table, quarantine, tables, metrics, bundle, plots) into the
    staging folder; the plots' PNGs are returned for the report (MLflow logs the folder's)."""
    io.write_frame(result.segments, staging / layout.SEGMENTS)
    clean.write_quarantine(staging / layout.QUARANTINE)
    io.write_frame(result.summary, staging / layout.STATUS_SUMMARY)
    io.write_frame(result.cluster_profiles, staging / layout.CLUSTER_PROFILES)
    if result.confusion is not None:
        io.write_frame(result.confusion.reset_index(), staging / layout.PLANTED_CONFUSION)
    for name, table in result.tables.items():
        io.write_frame(table, staging / layout.table_file(name))
    io.write_json(
        {"as_of": str(clean.as_of.date()), "metrics": result.metrics, "source": source},
        staging / layout.METRICS,
    )
    io.save_bundle(result.model, staging / layout.BUNDLE)
    pngs = plots.render_pngs(plots.training_figures(result))
    io.write_pngs(pngs, staging / layout.PLOTS)
    return pngs


# -- reliability: champion publication, locks, fault points ---------------------------------------
def training_lock(config: Config) -> Path:
    """The lock of one model path: trainings of other models run side by side."""
    model = Path(config.model_path)
    return model.with_name(f".{model.name}.lock")


def held_back_directory(config: Config) -> Path:
    """Where a model that did not become champion (held back by a gate, or not tracked) is
    written: beside ``--output``, never over it."""
    output = Path(config.output)
    return output.with_name(f"{output.name}-held-back")


def verdict_line(tracked: tracking.TrackedRun | None, error: Exception | None) -> str:
    """What happened to this model, in one sentence for the report."""
    if error is not None:
        return (
            "Not tracked: MLflow could not record this run, so it is not the champion; "
            "these outputs were kept beside the champion's."
        )
    if tracked is None:
        return "Not tracked (tracking disabled): published as the current model."
    if tracked.promoted:
        return f"Champion: model version {tracked.model_version} passed every gate."
    failed = ", ".join(f"{g.name} ({g.detail})" for g in tracked.gates if g.passed is False)
    return (
        f"Rejected: held back by gate {failed}. Model version {tracked.model_version} stays "
        "challenger; the champion is unchanged."
    )


def with_verdict(html: str, verdict: str) -> str:
    """The report with the promotion verdict as its first line."""
    from html import escape

    banner = (
        '<p class="verdict" style="font-weight:bold;padding:0.5em;border:2px solid #444">'
        f"{escape(verdict)}</p>"
    )
    head, marker, body = html.partition("<body>")
    return f"{head}{marker}{banner}{body}" if marker else banner + html


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return quote(text, 200)


# Fault injection for the kill tests: LOYALTY_FAULT_AT=<point> kills this process (SIGKILL, as
# an operator's kill -9 or the OOM killer would) when the training reaches that point.
FAULT_ENV = "LOYALTY_FAULT_AT"
FAULT_POINTS = ("after_registry", "after_outputs", "after_bundle")


def fault_point(name: str) -> None:
    import os
    import signal

    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def recover_publication(config: Config) -> list[str]:
    """Complete or roll back a publication that a killed training left half-done.

    The sequence is: registry (version, challenger alias, champion alias, tag
    ``publish=pending``) -> outputs folder -> bundle at ``model_path`` -> tag ``done``. A version
    still ``pending`` is completed when its outputs were published (the run id in
    ``run.json`` of ``--output`` is its run): the bundle is copied from there. Otherwise the
    champion alias goes back to the version that held it before. Returns what was done.
    """
    done = []
    for pending in tracking.pending_publications(config.tracking):
        published = Path(config.output) / layout.RUN
        try:
            run_id = io.read_json(published).get("run_id") if published.exists() else None
        except (OSError, ValueError):
            run_id = None
        if pending.is_champion and run_id == pending.run_id:
            io.publish_copy(Path(config.output) / layout.BUNDLE, config.model_path)
            tracking.mark_publication(config.tracking, pending.version, "done")
            done.append(f"completed the publication of model version {pending.version}")
        else:
            tracking.roll_back_publication(config.tracking, pending)
            done.append(
                f"rolled back model version {pending.version} (a killed run moved the champion "
                f"alias but never published it); champion: {pending.previous_champion or 'none'}"
            )
    for line in done:
        log.warning(line)
    return done


def publish_promoted(config: Config, version: str, *, run_id: str, reason: str) -> None:
    """After a promotion by hand: the new champion's bundle to ``model_path`` and its logged
    outputs to ``output``, so that both hold the champion, as after a training."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        bundle, outputs = tracking.download_champion_files(config.tracking, version, Path(folder))
        digest = io.file_sha256(bundle)
        io.hash_path(bundle).write_text(f"{digest}  {bundle.name}\n", encoding="utf-8")
        if outputs is not None:
            with io.staging_directory(Path(config.output)) as staging:
                for path in sorted(outputs.iterdir()):
                    if path.is_file():
                        io.publish_copy(path, staging / path.name)
                io.publish_copy(bundle, staging / layout.BUNDLE)
                io.write_json(
                    {
                        "run_id": run_id,
                        "model_version": version,
                        "promoted": True,
                        "gates": {"by_hand": reason},
                    },
                    staging / layout.RUN,
                )
                report_path = staging / layout.REPORT
                if report_path.exists():
                    verdict = f"Champion by hand: model version {version} ({reason})."
                    io.write_text(
                        with_verdict(report_path.read_text("utf-8"), verdict), report_path
                    )
                io.publish_directory(staging, Path(config.output))
        io.publish_copy(bundle, config.model_path)


def _compare_with_champion(
    result: TrainingResult, config: Config, *, source: DataSource, clean: CleanLines
) -> None:
    """Transitions, KPIs across runs and drift against the champion, added to ``result``."""
    # Who moved: the same customers under the current champion (before it may be replaced).
    previous = tracking.champion_segments_or_none(config.tracking)
    if previous is not None:
        counts, moves = status_transitions(previous, result.segments)
        result.tables["labeling_transitions"] = counts.reset_index()
        result.stage_metrics["labeling"].update(moves)
    # KPIs over time: earlier runs on the same data beside this one, once there are two.
    across = kpis_across_runs(
        tracking.kpi_runs(config.tracking, source=source.path), result.metrics, as_of=clean.as_of
    )
    if len(across) >= 2:
        result.tables["labeling_kpis_across_runs"] = across
    # Drift: this data's features against the champion's training data (bundles from
    # before drift checks carry no reference: then there is nothing to compare with).
    champion = tracking.champion_bundle_or_none(config.tracking)
    reference = getattr(champion, "feature_reference", None)
    if reference:
        drift, psi_metrics, _ = drift_check(
            result.segments,
            reference,
            threshold=config.monitoring.drift_warn_psi,
            against="the champion's training data",
        )
        result.tables["data_drift"] = drift
        result.stage_metrics["data"].update(psi_metrics)
    # What the holdout said beside what the latest backtest on the same data measured.
    backtest = tracking.latest_backtest(config.tracking, source=source.path)
    if backtest is not None:
        result.tables["clv_backtest_vs_holdout"] = report.holdout_beside_backtest(
            result.metrics, backtest
        )


def seed_stability(
    signals: pd.DataFrame,
    statuses: pd.Series,
    clustering: ClusteringConfig,
    labeling: LabelingConfig,
    *,
    seed: int,
    threads: int = 1,
) -> float:
    """Whether names hinge on the seed: adjusted Rand index between ``statuses`` and the
    statuses of a refit (clusters and names) with the next seed.

    Same k: this measures whether the names hold, not whether k does (choose_k's stability).
    The refit runs on the seeded sample the k search uses (every customer up to
    ``selection_sample_size``, so a base that small gets exactly the full-base figure): the
    agreement of two labelings is estimated as well from 20,000 customers as from a million,
    and the refit's cost no longer grows with the base.
    """
    sample = selection_sample(signals, clustering.selection_sample_size, random_state=seed + 1)
    _, other_clusters, _ = fit_clusters(sample, clustering, random_state=seed + 1, threads=threads)
    _, other_statuses = label_clusters(sample, other_clusters, labeling)
    return float(adjusted_rand_score(statuses.loc[sample.index], other_statuses["status"]))
