"""The fitted bundle: everything needed to segment customers again without refitting."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from pipeline.actions import RankReference, apply_playbook, assign_sub_segments
from pipeline.config import (
    Config,
    PlaybookEntry,
    SubSegmentRule,
    shipped_playbook,
    shipped_sub_segments,
)
from pipeline.customer_value import ValueForecaster
from pipeline.errors import ConfigError
from pipeline.evaluate import BinnedDistribution
from pipeline.features import build_features
from pipeline.labeling import CLUSTER, StatusLabeler
from pipeline.redact import redacted_config
from pipeline.schema import CUSTOMER_ID

# The segment table's leading columns: a contract with notebooks, schedulers and scoring.
SEGMENT_COLUMNS = (
    CUSTOMER_ID,
    "status",
    "status_reason",
    "status_source",
    "sub_segment",
    CLUSTER,
    "value_trend",
    "trend_ratio",
    "trend_confidence",
    "p_alive",
    "p_purchase",
    "expected_purchases",
    "expected_spend",
    "clv",
    "days_to_next_purchase",
    "expected_next_purchase",
    "frequency",
    "recency_days",
    "tenure_days",
    "monetary",
    "days_since_last_purchase",
    "action",
    "channel",
    "contact_every_days",
)


def sub_segment_rules(config: Config) -> tuple[SubSegmentRule, ...]:
    """The config's sub-segment rules, or the shipped ones."""
    return config.sub_segments if config.sub_segments is not None else shipped_sub_segments()


def playbook_rules(config: Config) -> Mapping[str, PlaybookEntry]:
    """The config's playbook (status -> action, channel, cadence), or the shipped one."""
    return config.playbook if config.playbook is not None else shipped_playbook()


def assemble_segments(
    features: pd.DataFrame,
    clusters: np.ndarray,
    values: pd.DataFrame,
    statuses: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    sub_segments: tuple[SubSegmentRule, ...],
    playbook: Mapping[str, PlaybookEntry],
    attributes: pd.DataFrame | None = None,
    rank_reference: RankReference | None = None,
) -> pd.DataFrame:
    """One row per customer: contract columns first, then actions, features and the as-of date.

    ``attributes`` (one row per customer, from the customers table) are joined so that
    sub-segment rules can combine a status with them; customers without a row get nulls.
    ``rank_reference`` places customers in the training population for ``rank_`` rules
    (:func:`pipeline.actions.rank_reference`).
    """
    table = pd.concat(
        [
            features.reset_index(drop=True),
            values.reset_index(drop=True),
            statuses.reset_index(drop=True),
        ],
        axis=1,
    )
    table[CLUSTER] = clusters
    # One resolution whatever the caller's timestamp carried, so tables compare byte for byte.
    as_of = pd.Timestamp(as_of).normalize().as_unit("ns")
    table["expected_next_purchase"] = (
        as_of + pd.to_timedelta(table["days_to_next_purchase"].round(), unit="D")
    ).astype("datetime64[ns]")
    if attributes is not None:
        # Besides the features, the columns added below (sub_segment, action, channel, ...).
        taken = {*table.columns, *SEGMENT_COLUMNS, "as_of"} - {CUSTOMER_ID}
        clashes = sorted(set(attributes.columns) & taken)
        if clashes:
            raise ConfigError(
                f"data.customers: columns {clashes} would replace columns of the segment table; "
                "leave them out of data.customers.columns.extra"
            )
        table = table.merge(attributes, on=CUSTOMER_ID, how="left", validate="1:1")
    table["sub_segment"] = assign_sub_segments(table, sub_segments, reference=rank_reference)
    table = pd.concat([table, apply_playbook(table, playbook)], axis=1)
    table["as_of"] = pd.Series(as_of, index=table.index).astype("datetime64[ns]")
    rest = [c for c in table.columns if c not in SEGMENT_COLUMNS]
    return (
        table[list(SEGMENT_COLUMNS) + rest]
        .sort_values(CUSTOMER_ID, kind="mergesort")
        .reset_index(drop=True)
    )


@dataclass
class SegmentationModel:
    """A fitted segmentation: feature settings, clusterer, value model and labeler."""

    config: Config
    trained_as_of: pd.Timestamp
    prior_gap_days: float
    clusterer: Pipeline
    value_model: ValueForecaster
    labeler: StatusLabeler
    metadata: dict[str, Any] = field(default_factory=dict)
    # Each feature's training distribution, for drift checks. A class-level default, so that
    # bundles pickled before it existed still load (and simply have no reference).
    feature_reference: dict[str, BinnedDistribution] | None = None
    # The training population's quantiles of the columns sub-segment rules rank by.
    rank_reference: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        # A bundle is a file that travels: it never carries a credential from the config.
        self.config = redacted_config(self.config)

    def features(
        self,
        transactions: pd.DataFrame,
        *,
        as_of: pd.Timestamp,
        returns: pd.DataFrame | None = None,
        loyalty: pd.DataFrame | None = None,
        campaigns: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """The training's features of clean transactions (and clean loyalty events and campaign
        interactions, when the training had them), with the training's population prior."""
        return build_features(
            transactions,
            as_of=as_of,
            settings=self.config.features,
            prior_gap_days=self.prior_gap_days,
            returns=returns,
            engine=self.config.engine,
            loyalty=loyalty,
            campaigns=campaigns,
        )

    def segment_features(
        self,
        features: pd.DataFrame,
        *,
        as_of: pd.Timestamp,
        horizon_days: int,
        attributes: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Apply the fitted stages to per-customer features."""
        clusters = self.clusterer.predict(features).astype("int64")
        values = self.value_model.predict(features, horizon_days=horizon_days)
        signals = pd.concat(
            [features.reset_index(drop=True), values.reset_index(drop=True)], axis=1
        )
        signals[CLUSTER] = clusters
        statuses = self.labeler.predict(signals)
        return assemble_segments(
            features,
            clusters,
            values,
            statuses,
            as_of=as_of,
            sub_segments=sub_segment_rules(self.config),
            playbook=playbook_rules(self.config),
            attributes=attributes,
            rank_reference=self.rank_reference,
        )

    def segment(
        self,
        transactions: pd.DataFrame,
        *,
        as_of: pd.Timestamp,
        horizon_days: int | None = None,
        returns: pd.DataFrame | None = None,
        attributes: pd.DataFrame | None = None,
        loyalty: pd.DataFrame | None = None,
        campaigns: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Segment clean transactions (``customer_id, timestamp, amount``) observed up to ``as_of``.

        ``attributes``, ``loyalty`` and ``campaigns`` are the optional tables, clean (see
        :func:`pipeline.tables.read_optional_tables`): pass the ones the training had.
        """
        features = self.features(
            transactions, as_of=as_of, returns=returns, loyalty=loyalty, campaigns=campaigns
        )
        return self.segment_features(
            features,
            as_of=as_of,
            horizon_days=horizon_days or self.config.horizon_days,
            attributes=attributes,
        )


@dataclass
class TrainingResult:
    """What one fit produced: the table, the bundle and each stage's metrics."""

    segments: pd.DataFrame
    model: SegmentationModel
    stage_metrics: dict[str, dict[str, float]]
    cluster_profiles: pd.DataFrame
    summary: pd.DataFrame
    confusion: pd.DataFrame | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    value_model_name: str = ""
    k_reason: str = ""

    @property
    def metrics(self) -> dict[str, float]:
        """All stage metrics in one flat dict (names are unique across stages)."""
        return {
            name: value for stage in self.stage_metrics.values() for name, value in stage.items()
        }
