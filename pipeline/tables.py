"""The optional tables beside the transactions: customers, loyalty events, campaign interactions.

Each is read only when the config's data section names it, validated by its contract in
:mod:`pipeline.schema`, and handed on ready for the feature stage. Training and scoring read
them the same way, so a bundle trained with them is scored with them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from pipeline import io
from pipeline.config import DataConfig
from pipeline.errors import InputError
from pipeline.features.attributes import attribute_features
from pipeline.schema import (
    CleanEvents,
    clean_campaign_events,
    clean_customers,
    clean_loyalty_events,
    combine_events,
)


@dataclass(frozen=True)
class OptionalTables:
    """What the configured optional tables hold; None for a table that is not configured.

    ``fingerprint`` identifies their contents ("" when none is configured), so that a retraining
    notices a changed loyalty or campaign file as it notices changed transactions.
    """

    attributes: pd.DataFrame | None = None
    loyalty: CleanEvents | None = None
    campaigns: CleanEvents | None = None
    fingerprint: str = ""

    def events(self) -> dict[str, pd.DataFrame | None]:
        """The clean event tables, as the feature stage takes them (``loyalty``, ``campaigns``)."""
        return {
            "loyalty": self.loyalty.events if self.loyalty is not None else None,
            "campaigns": self.campaigns.events if self.campaigns is not None else None,
        }

    def metrics(self) -> dict[str, float]:
        """Row accounting of the event tables: rows in, used and set aside (per reason)."""
        metrics: dict[str, float] = {}
        for prefix, table in (("loyalty", self.loyalty), ("campaign", self.campaigns)):
            if table is None:
                continue
            metrics[f"{prefix}_rows_in"] = float(table.rows_in)
            metrics[f"{prefix}_rows_used"] = float(len(table.events))
            metrics[f"{prefix}_rows_set_aside"] = float(len(table.set_aside))
            for reason, count in table.counts_by_reason().items():
                metrics[f"{prefix}_set_aside_{reason}"] = float(count)
        return metrics


def _read(path: str, *, key: str, customer_id: str) -> pd.DataFrame:
    try:
        return io.read_table(path, string_columns=(customer_id,))
    except InputError as error:
        if error.problem != "file not found":
            raise
        raise InputError(
            path,
            "file not found",
            f"Check data.{key} in the config (scoring reads the tables the model was trained with)",
        ) from None


def read_optional_tables(data: DataConfig, *, as_of: pd.Timestamp) -> OptionalTables:
    """Read and validate every optional table ``data`` configures.

    ``as_of`` dates the customer attributes (age, sign-up tenure); the event tables are cut at
    the as-of date by the feature stage, which sees every cut-off it needs.

    Raises
    ------
    pipeline.errors.InputError
        A table cannot be used as it is (its message names the file, column and row).
    """
    digest = hashlib.sha256()
    attributes = loyalty = campaigns = None
    if data.customers is not None:
        customers_config = data.customers
        raw = _read(
            customers_config.path, key="customers", customer_id=customers_config.columns.customer_id
        )
        digest.update(io.fingerprint(raw).encode())
        customers = clean_customers(raw, config=customers_config, source=customers_config.path)
        attributes = attribute_features(customers, as_of=as_of)
    if data.loyalty_events is not None:
        loyalty_config = data.loyalty_events
        raw = _read(
            loyalty_config.path,
            key="loyalty_events",
            customer_id=loyalty_config.columns.customer_id,
        )
        digest.update(io.fingerprint(raw).encode())
        loyalty = clean_loyalty_events(raw, config=loyalty_config, source=loyalty_config.path)
    if data.campaigns:
        parts = []
        for campaign_source in data.campaigns:
            raw = _read(
                campaign_source.path,
                key="campaigns",
                customer_id=campaign_source.columns.customer_id,
            )
            digest.update(io.fingerprint(raw).encode())
            parts.append(
                clean_campaign_events(raw, config=campaign_source, source=campaign_source.path)
            )
        campaigns = combine_events(parts)
    configured = any(t is not None for t in (attributes, loyalty, campaigns))
    return OptionalTables(
        attributes=attributes,
        loyalty=loyalty,
        campaigns=campaigns,
        fingerprint=digest.hexdigest()[:16] if configured else "",
    )
