"""The feature stage: one row per customer from one row per transaction line.

Every feature is defined once, as an ibis expression (:mod:`.rfm`, :mod:`.behaviour`,
:mod:`.basket`, and from the optional tables :mod:`.loyalty` and :mod:`.campaigns`), and
documented in the docstring of the function that defines it; an engine (:mod:`pipeline.engine`:
DuckDB by default, Spark for data beyond one machine) runs them.
:func:`customer_aggregates` composes them into one aggregation per customer; the two features
that depend on a population figure (the typical gap) are added per customer afterwards
(:func:`customer_features`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import ibis
import numpy as np
import pandas as pd

from pipeline.config import EngineConfig, FeatureConfig
from pipeline.engine import Engine, connect
from pipeline.features.basket import basket_features, basket_sums, returned_sums, top_products
from pipeline.features.behaviour import (
    gap_prior_features,
    gap_prior_of,
    population_gap_prior,
    rhythm_features,
    rhythm_sums,
    trend_features,
    trend_sums,
)
from pipeline.features.campaigns import CAMPAIGN_FEATURES, campaign_features, campaign_sums
from pipeline.features.loyalty import LOYALTY_FEATURES, loyalty_features, loyalty_sums
from pipeline.features.rfm import DAY, purchase_days, purchase_history, rfm_features, rfm_sums
from pipeline.schema import AMOUNT, CUSTOMER_ID, CleanLines

# The features every data set has (besides customer_id), in table order: the catalogue that
# model inputs and benchmarks choose from.
FEATURE_COLUMNS = (
    "frequency",
    "recency_days",
    "tenure_days",
    "monetary",
    "days_since_last_purchase",
    "orders",
    "total_spend",
    "avg_order_value",
    "mean_gap_days",
    "gap_cv",
    "typical_gap_days",
    "overdue_ratio",
    "repeat_purchases_per_year",
    "spend_recent",
    "spend_previous",
    "spend_change",
    "purchases_recent",
    "purchases_previous",
    "purchase_change",
    "spend_trend",
    "purchases_year_ago",
    "spend_year_ago",
)
# Present when the transactions carry the columns they need (see pipeline.features.basket).
BASKET_FEATURES = (
    "items_per_order",
    "distinct_products",
    "discount_share",
    "return_rate",
    "top_product",
)
# Present when the optional tables are configured; each a fixed order (see their modules).
OPTIONAL_TABLE_FEATURES = (*LOYALTY_FEATURES, *CAMPAIGN_FEATURES)
# Features that are names, not numbers: returned as text (stages that take numbers skip them).
TEXT_FEATURES = ("top_product", "preferred_channel")

__all__ = [
    "BASKET_FEATURES",
    "CAMPAIGN_FEATURES",
    "FEATURE_COLUMNS",
    "LOYALTY_FEATURES",
    "TEXT_FEATURES",
    "CustomerHistory",
    "build_features",
    "customer_aggregates",
    "feature_columns",
    "population_gap_prior",
    "purchase_days",
]


def window_feature_columns(settings: FeatureConfig) -> tuple[str, ...]:
    """The activity-window features the settings ask for."""
    return tuple(
        name
        for days in settings.activity_windows_days
        for name in (f"purchases_last_{days}d", f"spend_last_{days}d")
    )


def feature_columns(settings: FeatureConfig, available: pd.Index | list[str]) -> list[str]:
    """Every feature column in table order: the catalogue, the windows, then the basket's, the
    loyalty events' and the campaigns' (those of them ``available``)."""
    present = set(available)
    optional = [c for c in (*BASKET_FEATURES, *OPTIONAL_TABLE_FEATURES) if c in present]
    return [*FEATURE_COLUMNS, *window_feature_columns(settings), *optional]


def customer_aggregates(
    lines: ibis.Table,
    days: ibis.Table,
    *,
    as_of: dt.date,
    settings: FeatureConfig,
    returns: ibis.Table | None = None,
    loyalty: ibis.Table | None = None,
    campaigns: ibis.Table | None = None,
) -> ibis.Table:
    """Every engine-computed feature, one row per customer who bought by ``as_of``.

    Parameters
    ----------
    lines
        Clean transaction lines (``customer_id``, ``timestamp``, ``amount`` and any of
        ``quantity``, ``product``, ``invoice``, ``discount``).
    days
        :func:`~pipeline.features.rfm.purchase_days` of ``lines`` (often materialized once for
        several cut-offs).
    as_of
        Observation end: lines and days after it are ignored.
    returns
        Return and cancellation lines (``customer_id``, ``timestamp``, ``amount``), if any.
    loyalty, campaigns
        Clean loyalty events and campaign interactions (:mod:`pipeline.schema`), if configured.
        Their features are joined to the buyers: customers found only in them are not added.
    """
    windows = settings.activity_windows_days
    history = purchase_history(days, as_of=as_of, period_days=settings.trend_period_days)
    sums = history.group_by(CUSTOMER_ID).aggregate(
        **rfm_sums(history, as_of=as_of),
        **rhythm_sums(history),
        **trend_sums(
            history, window_days=settings.recent_window_days, activity_windows_days=windows
        ),
    )
    for extra in (
        basket_sums(lines, as_of=as_of),
        returned_sums(returns, as_of=as_of) if returns is not None else None,
        top_products(lines, as_of=as_of),
        loyalty_sums(loyalty, as_of=as_of, window_days=settings.recent_window_days)
        if loyalty is not None
        else None,
        campaign_sums(campaigns, as_of=as_of) if campaigns is not None else None,
    ):
        if extra is not None:
            joined = sums.left_join(extra, CUSTOMER_ID)
            sums = joined.select(
                *(sums[c] for c in sums.columns),
                *(extra[c] for c in extra.columns if c != CUSTOMER_ID),
            )
    return sums.select(
        sums[CUSTOMER_ID],
        **rfm_features(sums),
        **rhythm_features(sums),
        **trend_features(
            sums, period_days=settings.trend_period_days, activity_windows_days=windows
        ),
        **basket_features(sums),
        **loyalty_features(sums),
        **campaign_features(sums),
    )


def customer_features(
    aggregates: ibis.Table, *, settings: FeatureConfig, prior_gap_days: float
) -> ibis.Table:
    """Every feature in catalogue order, sorted by customer: the engine's aggregates with the
    features the population's rhythm decides (:func:`.behaviour.gap_prior_features`)."""
    derived = gap_prior_features(aggregates, prior_gap_days=float(prior_gap_days))
    columns = feature_columns(settings, [*aggregates.columns, *derived])
    chosen = [derived[c].name(c) if c in derived else aggregates[c] for c in columns]
    return aggregates.select(aggregates[CUSTOMER_ID], *chosen).order_by(CUSTOMER_ID)


@dataclass
class CustomerHistory:
    """Clean transactions held by a feature engine: features at any cut-off, purchases in any window.

    The customer-value stage needs features at several cut-offs (calibration, holdout) and what
    each customer bought between them; the purchase days are computed once on the engine.
    """

    engine: Engine
    lines: ibis.Table
    days: ibis.Table
    settings: FeatureConfig
    returns: ibis.Table | None = None
    # The optional tables, aggregated at the same cut-offs as the transactions.
    loyalty: ibis.Table | None = None
    campaigns: ibis.Table | None = None

    @classmethod
    def from_frames(
        cls,
        engine: Engine,
        transactions: pd.DataFrame,
        *,
        settings: FeatureConfig,
        returns: pd.DataFrame | None = None,
        loyalty: pd.DataFrame | None = None,
        campaigns: pd.DataFrame | None = None,
    ) -> CustomerHistory:
        """Clean transactions (and return lines, loyalty events and campaign interactions)
        held in pandas, handed to the engine."""
        return cls.from_table(
            engine,
            engine.table(transactions),
            settings=settings,
            returns=engine.table(returns) if returns is not None else None,
            loyalty=loyalty,
            campaigns=campaigns,
        )

    @classmethod
    def from_table(
        cls,
        engine: Engine,
        lines: ibis.Table,
        *,
        settings: FeatureConfig,
        returns: ibis.Table | None = None,
        loyalty: pd.DataFrame | None = None,
        campaigns: pd.DataFrame | None = None,
        materialize: bool = True,
    ) -> CustomerHistory:
        """Clean transaction lines already on the engine (a table, or files it reads).

        The optional event tables come from pandas whatever the engine: they are small (a row
        per programme event or campaign contact, not per purchase line). ``materialize``: keep
        the purchase days on the engine, for features at several cut-offs; without, every
        query computes them again from the lines.
        """
        days = purchase_days(lines)
        return cls(
            engine=engine,
            lines=lines,
            days=engine.materialize(days) if materialize else days,
            settings=settings,
            returns=returns,
            # A configured table is used even when empty, so its features always exist.
            loyalty=engine.table(loyalty) if loyalty is not None else None,
            campaigns=engine.table(campaigns) if campaigns is not None else None,
        )

    def features(self, as_of: pd.Timestamp, *, prior_gap_days: float | None = None) -> pd.DataFrame:
        """All features at ``as_of``, one row per customer, sorted by ``customer_id``.

        ``prior_gap_days`` is the population rhythm that shrinks single customers' gaps; None
        measures it on these customers (training). Scoring passes the value learned at training.
        """
        aggregates = self.engine.materialize(
            customer_aggregates(
                self.lines,
                self.days,
                as_of=pd.Timestamp(as_of).date(),
                settings=self.settings,
                returns=self.returns,
                loyalty=self.loyalty,
                campaigns=self.campaigns,
            )
        )
        if prior_gap_days is None:
            repeaters = aggregates.filter(aggregates.frequency > 0)
            gaps = self.engine.collect(repeaters.select("recency_days", "frequency"))
            prior_gap_days = gap_prior_of(gaps["recency_days"], gaps["frequency"])
        # Sorted by the engine (binary order, as Python sorts text): millions of ids sort there
        # in parallel, not here in one thread.
        return self.engine.collect(
            customer_features(aggregates, settings=self.settings, prior_gap_days=prior_gap_days)
        )

    def purchases_between(
        self, customers: pd.Series, *, start: pd.Timestamp, end: pd.Timestamp
    ) -> tuple[np.ndarray, np.ndarray]:
        """Purchase days and spend of each customer after the day ``start`` up to the day ``end``."""
        days = self.days
        window = days.filter(
            (days[DAY] > ibis.date(pd.Timestamp(start).date()))
            & (days[DAY] <= ibis.date(pd.Timestamp(end).date()))
        )
        totals = self.engine.collect(
            window.group_by(CUSTOMER_ID).aggregate(
                purchases=window.count(), spend=window[AMOUNT].sum().cast("float64")
            )
        )
        aligned = (
            totals.astype({CUSTOMER_ID: "string"})
            .set_index(CUSTOMER_ID)
            .reindex(customers.to_numpy())
            .fillna(0.0)
        )
        return (
            aligned["purchases"].to_numpy(dtype="float64"),
            aligned["spend"].to_numpy(dtype="float64"),
        )

    def first_day(self) -> pd.Timestamp:
        """The first purchase day in the data."""
        first = self.engine.collect(self.days.aggregate(first=self.days[DAY].min()))
        return pd.Timestamp(first["first"].iloc[0])


def build_features(
    transactions: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    settings: FeatureConfig | None = None,
    prior_gap_days: float | None = None,
    returns: pd.DataFrame | None = None,
    engine: EngineConfig | None = None,
    loyalty: pd.DataFrame | None = None,
    campaigns: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """All per-customer features of clean transactions at ``as_of`` (see :class:`CustomerHistory`).

    A convenience that opens an engine (DuckDB unless ``engine`` says otherwise) for one call.
    """
    with connect(engine or EngineConfig()) as opened:
        history = CustomerHistory.from_frames(
            opened,
            transactions,
            settings=settings or FeatureConfig(),
            returns=returns,
            loyalty=loyalty,
            campaigns=campaigns,
        )
        return history.features(as_of, prior_gap_days=prior_gap_days)


def customer_history(
    engine: Engine,
    clean: CleanLines,
    settings: FeatureConfig,
    *,
    loyalty: pd.DataFrame | None = None,
    campaigns: pd.DataFrame | None = None,
) -> CustomerHistory:
    """The feature engine's view of cleaned data, wherever cleaning left it (pandas, Parquet
    parts on disk, Spark). The optional event tables come from pandas: they are small."""
    lines, returns = clean.on_engine(engine)
    return CustomerHistory.from_table(
        engine, lines, settings=settings, returns=returns, loyalty=loyalty, campaigns=campaigns
    )
