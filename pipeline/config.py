"""Typed configuration, loaded once from YAML and validated.

Every section is a frozen pydantic model that forbids unknown keys, so a misspelt key is an
error naming it rather than a setting silently ignored. Command-line flags are applied as
overrides on top of the file (`load_config(path, overrides)`), and the resolved object is what
gets logged with the run.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError

Status = Literal["new", "active", "loyal", "occasional", "at_risk", "declining", "lost"]
STATUSES: tuple[str, ...] = ("new", "active", "loyal", "occasional", "at_risk", "declining", "lost")

DEFAULT_CONFIG_PATH = Path("configs/default.yaml")

# How every dated table (transactions, loyalty events, campaigns) writes its timestamps.
TimestampFormat = Annotated[
    str | None,
    Field(
        description="strftime format of the timestamp column, or epoch_s / epoch_ms (seconds or "
        "milliseconds since 1970-01-01 UTC); null: ISO 8601"
    ),
]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TransactionColumns(_Section):
    """Names of the input columns that hold each field; null for those the file does not have.

    Without an amount column, amount = quantity x unit_price.
    """

    customer_id: str = "customer_id"
    timestamp: str = "timestamp"
    amount: str | None = "amount"
    quantity: str | None = None
    unit_price: str | None = None
    invoice: str | None = None
    product: str | None = None
    discount: str | tuple[str, ...] | None = Field(
        default=None,
        description="discount amounts (positive), summed when several columns are given",
    )
    returns: str | None = Field(
        default=None, description="a true/false (or 1/0) column marking return lines"
    )

    @model_validator(mode="after")
    def _amount_or_its_parts(self) -> TransactionColumns:
        if self.amount is None and (self.quantity is None or self.unit_price is None):
            raise ValueError("map either amount, or both quantity and unit_price")
        return self


# The columns the customers table adds to the segment table (besides its extra columns).
ATTRIBUTE_NAMES = (
    "customer_id",
    "age",
    "age_band",
    "signup_tenure_days",
    "gender",
    "location",
    "tier",
)


class CustomerColumns(_Section):
    """Names of the customers table's columns; null for those the file does not have.

    ``age_band`` maps a column that already holds age bands (e.g. "45-54"), for files without
    a birth date; ``extra`` lists further columns joined to the segment table as text, under
    their own names, for sub-segment rules (e.g. income band, household size).
    """

    customer_id: str = "customer_id"
    birth_date: str | None = None
    age_band: str | None = None
    gender: str | None = None
    location: str | None = None
    signup_date: str | None = None
    tier: str | None = None
    extra: tuple[str, ...] = Field(
        default=(), description="more columns passed through as text, under their own names"
    )

    @model_validator(mode="after")
    def _one_source_of_age(self) -> CustomerColumns:
        if self.birth_date is not None and self.age_band is not None:
            raise ValueError("map birth_date (age bands are derived from it) or age_band, not both")
        # An extra column under an attribute's own name would shadow it.
        clashes = sorted(set(self.extra) & set(ATTRIBUTE_NAMES))
        if clashes:
            raise ValueError(f"extra columns may not be named like an attribute: {clashes}")
        if len(set(self.extra)) != len(self.extra):
            raise ValueError("extra lists a column twice")
        return self


class CustomersConfig(_Section):
    """An optional customers table: attributes joined to the segment table (for sub-segments)."""

    path: str
    columns: CustomerColumns = CustomerColumns()
    date_format: str | None = Field(
        default=None, description="strftime format of its dates; null: ISO"
    )


class LoyaltyColumns(_Section):
    """Names of the loyalty events' columns: a wide layout (``points_earned`` and/or
    ``points_redeemed``) or a long one (``points`` and ``event_type``)."""

    customer_id: str = "customer_id"
    timestamp: str = "timestamp"
    points_earned: str | None = None
    points_redeemed: str | None = None
    points: str | None = None
    event_type: str | None = None


class LoyaltyEventValues(_Section):
    """Which values of the event-type column mean points earned or redeemed (long layout).

    Values are compared ignoring case and surrounding spaces; a value in no list is an error,
    so list the event types that carry no points movement you want counted under ``ignored``.
    """

    earned: tuple[str, ...] = ()
    redeemed: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


class LoyaltyEventsConfig(_Section):
    """An optional table of loyalty-programme events: points earned and redeemed."""

    path: str
    columns: LoyaltyColumns
    event_values: LoyaltyEventValues | None = Field(
        default=None, description="long layout only: event types meaning earned / redeemed"
    )
    timestamp_format: TimestampFormat = None

    @model_validator(mode="after")
    def _one_layout(self) -> LoyaltyEventsConfig:
        columns = self.columns
        wide = columns.points_earned is not None or columns.points_redeemed is not None
        long = columns.points is not None or columns.event_type is not None
        if wide == long:
            raise ValueError(
                "map either points_earned and/or points_redeemed (wide layout), or points and "
                "event_type (long layout)"
            )
        if long:
            if columns.points is None or columns.event_type is None:
                raise ValueError("the long layout needs both points and event_type")
            values = self.event_values
            if values is None or not (values.earned or values.redeemed):
                raise ValueError(
                    "the long layout needs event_values: {earned: [...], redeemed: [...]}"
                )
            _no_value_twice(values.earned, values.redeemed, values.ignored)
        elif self.event_values is not None:
            raise ValueError("event_values only apply to the long layout (points + event_type)")
        return self


CampaignEvent = Literal["sent", "opened", "clicked", "converted"]
CAMPAIGN_EVENTS: tuple[str, ...] = ("sent", "opened", "clicked", "converted")


class CampaignColumns(_Section):
    """Names of a campaign source's columns; null for those the file does not have."""

    customer_id: str = "customer_id"
    timestamp: str | None = None
    campaign_id: str | None = None
    channel: str | None = None
    event: str | None = None


class CampaignEventValues(_Section):
    """Which values of the event column mean each interaction (compared ignoring case and
    surrounding spaces); a value in no list is an error unless listed under ``ignored``."""

    sent: tuple[str, ...] = ()
    opened: tuple[str, ...] = ()
    clicked: tuple[str, ...] = ()
    converted: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


class CampaignSource(_Section):
    """One file of campaign interactions: an event column mapped by ``event_values``, or one
    fixed ``event`` for every row (e.g. a file of sends, or of coupon redemptions)."""

    path: str
    columns: CampaignColumns = CampaignColumns()
    event_values: CampaignEventValues | None = None
    event: CampaignEvent | None = Field(
        default=None, description="the event of every row, for a file without an event column"
    )
    timestamp_format: TimestampFormat = None

    @model_validator(mode="after")
    def _event_column_or_fixed_event(self) -> CampaignSource:
        if (self.columns.event is None) == (self.event is None):
            raise ValueError("give either columns.event (with event_values) or a fixed event")
        if self.columns.event is not None:
            values = self.event_values
            if values is None or not any(getattr(values, e) for e in CAMPAIGN_EVENTS):
                raise ValueError("an event column needs event_values: {sent: [...], opened: [...]}")
            _no_value_twice(*(getattr(values, e) for e in (*CAMPAIGN_EVENTS, "ignored")))
        elif self.event_values is not None:
            raise ValueError("event_values only apply with an event column (columns.event)")
        return self


def _no_value_twice(*groups: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for group in groups:
        for value in group:
            key = value.strip().casefold()
            if key in seen:
                raise ValueError(f"event value '{value}' is listed twice")
            seen.add(key)


class DataConfig(_Section):
    """Where the transactions come from and how to read them."""

    transactions: str | None = Field(
        default=None,
        description="CSV or Parquet path, or 'lifetimes:cdnow' for the CDNOW data in the "
        "lifetimes wheel; null uses the embedded sample.",
    )
    columns: TransactionColumns = TransactionColumns()
    timestamp_format: TimestampFormat = None
    duplicates: Literal["error", "quarantine", "keep"] = Field(
        default="error",
        description="Exact duplicate rows: stop with an error, set them aside, or keep them "
        "(e.g. when two identical items in one basket are separate rows).",
    )
    negative_amounts: Literal["error", "quarantine"] = "error"
    cancellations: Literal["net", "quarantine"] = Field(
        default="net",
        description="cancellation lines (invoice starting with cancellation_prefix, or a negative "
        "quantity): net them against the purchase they cancel, or only set them aside",
    )
    cancellation_prefix: str = "C"
    non_product_codes: tuple[str, ...] = Field(
        default=(),
        description="product codes that are not purchases (postage, fees, manual adjustments): set aside",
    )
    product_code_pattern: str | None = Field(
        default=None,
        description="regular expression every product code of the shop matches in full (e.g. "
        "'\\d{5}[A-Za-z]{0,2}'); a code that does not is a service line (postage, fee, "
        "adjustment, test) and is set aside as non_product, listed or not. null: the list and "
        "the built-in adjustment and test names only",
    )

    @field_validator("product_code_pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"not a regular expression ({error})") from None
        return pattern

    non_positive_prices: Literal["error", "quarantine"] = Field(
        default="quarantine",
        description="unit price 0 or below (free samples, bad-debt adjustments)",
    )
    customers: CustomersConfig | None = None
    stream_above_mb: float | None = Field(
        default=1024,
        ge=0,
        description="a transactions file larger than this is cleaned partition by partition "
        "from disk (files larger than memory); null: always in memory",
    )
    loyalty_events: LoyaltyEventsConfig | None = Field(
        default=None, description="optional loyalty-programme events (points earned, redeemed)"
    )
    campaigns: tuple[CampaignSource, ...] = Field(
        default=(), description="optional campaign interaction files (sent, opened, ...)"
    )


class EmbeddedDataConfig(_Section):
    """The planted sample that runs when no transactions file is given."""

    n_customers: int = Field(default=6000, ge=100)
    as_of: dt.date = dt.date(2025, 12, 31)
    history_days: int = Field(default=730, ge=365)
    seed: int = 42
    directory: Path = Path("data/embedded")


class FeatureConfig(_Section):
    """Windows and periods of the behavioural features (see pipeline/features)."""

    recent_window_days: int = Field(
        default=180,
        ge=7,
        description="recent spend and purchases are compared with the window of this length before",
    )
    activity_windows_days: tuple[int, ...] = Field(
        default=(30, 90),
        description="purchases_last_<N>d and spend_last_<N>d for each N",
    )
    trend_period_days: int = Field(
        default=30, ge=7, description="spend_trend is fitted on the spend per period of this length"
    )

    @field_validator("activity_windows_days")
    @classmethod
    def _positive_distinct(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(days < 1 for days in value) or len(set(value)) != len(value):
            raise ValueError("activity windows must be distinct positive numbers of days")
        return tuple(sorted(value))


class EngineConfig(_Section):
    """Where the feature aggregations run: DuckDB in-process, or Apache Spark."""

    name: Literal["duckdb", "spark"] = Field(
        default="duckdb",
        description="duckdb: no server, files larger than memory; spark: pip install '.[spark]'",
    )
    duckdb_threads: int | None = Field(default=None, ge=1, description="null: every core")
    duckdb_memory_limit: str | None = Field(
        default="3GB",
        description="DuckDB's working memory; beyond it operators spill to a scratch directory "
        "(3GB keeps a 50M-row feature stage under 4 GiB and is no slower). null: 80% of RAM",
    )
    spark_master: str | None = Field(
        default=None,
        description="e.g. local[2] or spark://host:7077; null: what spark-submit or the "
        "environment sets (local[*] when nothing does)",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict, description="extra Spark settings, e.g. spark.executor.memory"
    )


class ClusteringConfig(_Section):
    """Discovery: which features, how they are transformed, which algorithm, how k is chosen."""

    algorithm: Literal["kmeans", "gmm"] = "kmeans"
    n_clusters: int | None = Field(
        default=None, ge=2, description="a fixed k; null chooses k on evidence over k_range"
    )
    k_range: tuple[int, int] = Field(
        default=(10, 18),
        description="smallest and largest k tried; more clusters than statuses, so that no two "
        "behaviours share a cluster (several clusters may share a name)",
    )
    n_init: int = Field(default=4, ge=1)
    features: tuple[str, ...] = (
        "repeat_purchases_per_year",
        "typical_gap_days",
        "days_since_last_purchase",
        "overdue_ratio",
        "tenure_days",
        "avg_order_value",
        "spend_change",
        "gap_cv",
    )
    skewed_features: tuple[str, ...] = Field(
        default=(
            "repeat_purchases_per_year",
            "typical_gap_days",
            "days_since_last_purchase",
            "overdue_ratio",
            "tenure_days",
            "avg_order_value",
        ),
        description="right-skewed features, transformed by skew_transform before scaling",
    )
    skew_transform: Literal["log", "rank"] = Field(
        default="log", description="log1p, or rank (quantiles, robust to any outlier)"
    )
    selection_sample_size: int = Field(
        default=20_000, ge=500, description="k is chosen on a seeded sample of this many customers"
    )
    stability_bootstraps: int = Field(
        default=2, ge=1, description="pairs of bootstrap fits per k for the stability (ARI) score"
    )
    min_stability: float = Field(
        default=0.75,
        ge=0,
        le=1,
        description="a k whose bootstrap fits agree less than this is not chosen",
    )
    silhouette_sample_size: int = Field(default=5000, ge=100)
    check_seed_stability: bool = Field(
        default=True,
        description="refit with another seed and report how many statuses change (adjusted Rand index)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ClusteringConfig:
        unknown = sorted(set(self.skewed_features) - set(self.features))
        if unknown:
            raise ValueError(f"skewed_features not in features: {unknown}")
        low, high = self.k_range
        if not 2 <= low <= high:
            raise ValueError("k_range must be two numbers 2 <= smallest <= largest")
        return self


ValueCandidate = Literal["bgnbd", "pareto_nbd", "mbgnbd", "nbd", "learned"]
SelectionMetric = Literal[
    "spend_gini", "spend_spearman", "spend_mae", "purchases_mae", "purchases_rmse"
]


class CLVConfig(_Section):
    """Customer value: candidate models, their holdout comparison and the value trend."""

    candidates: tuple[ValueCandidate, ...] = Field(
        default=("bgnbd", "pareto_nbd", "mbgnbd", "learned"),
        description="compared on the holdout; the best is refitted on the full history (nbd, "
        "purchases without dropout, is also the fallback when no dropout model can be fitted)",
    )
    holdout_days: int | None = Field(
        default=None,
        ge=14,
        description="length of the holdout the candidates are scored on; null: horizon_days, so "
        "that the holdout asks the forecast's own question (shortened to half the history when "
        "that is shorter; the same season a year earlier when the history holds a year more)",
    )
    selection_metric: SelectionMetric = Field(
        default="spend_mae",
        description="spend_mae rewards both ranking and level; spend_gini ranks only, and may pick a "
        "model whose total is far off",
    )
    annual_discount_rate: float = Field(
        default=0.1, ge=0, description="discount rate per year of clv"
    )
    seasonal_level_correction: bool = Field(
        default=False,
        description="scale the chosen forecast by its aggregate error in the same season a year "
        "earlier (within 0.5-2) when the holdout is that season; off by default: on a base that "
        "grows or ages between the two years the year-ago error is not this year's",
    )
    # The BTYD and Gamma-Gamma parameters describe the population (4 + 3 numbers), so their
    # sampling error shrinks as 1/sqrt(n) and a sample fixes them as well as the whole base:
    # measured on 100,000 planted customers (`make bench` case fit_sample, README "Speed,
    # measured"), fits on 25,000 of them moved the total expected purchases and spend by at most
    # 0.4% and each customer's forecast by a median 0.3% (rank correlation >= 0.9999), far
    # inside the holdout's own error, for a quarter of the fitting time.
    fit_sample_size: int | None = Field(
        default=25_000,
        ge=1000,
        description="BTYD and Gamma-Gamma parameters are fitted on a seeded sample of at most "
        "this many customers (every customer is still forecast)",
    )
    # The learned model has far more to learn (trees over two dozen inputs), so it keeps a
    # larger sample: its cost stays bounded, its accuracy is not traded for speed.
    learned_sample_size: int | None = Field(
        default=100_000,
        ge=1000,
        description="the learned value model is trained on a seeded sample of at most this "
        "many customer windows",
    )
    # The holdout ranks candidates by AUC, Brier score, Spearman and Gini. On 200,000 customers
    # each is known to about +-0.002 (AUC's standard error with a third buying is about 0.001),
    # finer than the gaps that decide between candidates on every data set measured (README
    # "Measured"); forecasting every candidate for every customer of a larger base buys no
    # better choice (on 1M customers it took 20 s of the value stage).
    holdout_sample_size: int | None = Field(
        default=200_000,
        ge=1000,
        description="candidates are scored on a seeded sample of at most this many holdout "
        "customers",
    )
    penalizer: float = Field(default=0.001, ge=0)
    monetary_penalizer: float = Field(default=0.001, ge=0)
    # value_trend is now a statistical test (pipeline.customer_value.value_trend); these two
    # fixed cuts only apply to bundles trained before it, which score as they were trained.
    declining_below: float = Field(
        default=0.7,
        gt=0,
        description="bundles trained before the trend test: trend_ratio below this: declining",
    )
    rising_above: float = Field(
        default=1.3,
        gt=0,
        description="bundles trained before the trend test: trend_ratio above this: rising",
    )

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> CLVConfig:
        if self.declining_below >= self.rising_above:
            raise ValueError("declining_below must be smaller than rising_above")
        if not any(c != "learned" for c in self.candidates):
            raise ValueError(
                "candidates need at least one purchase model (bgnbd, pareto_nbd, mbgnbd, nbd)"
            )
        return self


class Condition(_Section):
    """Bounds on one profile value; every bound given must hold.

    A bound is a number or the name of a labeling parameter such as ``new_window_days``.
    """

    gt: float | str | None = None
    ge: float | str | None = None
    lt: float | str | None = None
    le: float | str | None = None

    @model_validator(mode="after")
    def _at_least_one_bound(self) -> Condition:
        if all(v is None for v in (self.gt, self.ge, self.lt, self.le)):
            raise ValueError("a condition needs at least one of gt, ge, lt, le")
        return self


class StatusRule(_Section):
    """A status and the conditions (all must hold) under which a profile earns it."""

    status: Status
    when: dict[str, Condition] = Field(default_factory=dict)
    reason: str | None = None


class LabelingConfig(_Section):
    """Declarative rules that name clusters (and refine single customers).

    `cluster_rules` are tried in order against each cluster's profile (medians of its members);
    the first that matches names the cluster. `customer_rules` then override the cluster's name
    for single customers whose own values match; the report counts how often that happens.
    """

    new_window_days: int = Field(default=90, ge=1)
    established_days: int = Field(
        default=180,
        ge=1,
        description="days since the first purchase after which a customer counts as "
        "long-standing (a rule bound, like new_window_days)",
    )
    lost_p_purchase: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="lost: a calibrated chance of buying within the horizon at or below this "
        "(p_purchase; a rule bound). Below 15 in 100 a win-back contact rarely pays: typical "
        "reactivation response rates are a few percent",
    )
    min_cluster_purity: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="share of a cluster's members that must meet its status on their own for "
        "the cluster's name to hold for all of them; each member of a more mixed cluster takes "
        "the status their own signals meet (0: always the cluster's name)",
    )
    cluster_naming: Literal["members", "profile"] = Field(
        default="members",
        description="members: a cluster takes the status most of its members meet; profile: "
        "the status its median profile meets",
    )
    cluster_rules: tuple[StatusRule, ...] | None = Field(
        default=None, description="null uses the rules shipped in pipeline/rules/statuses.yaml"
    )
    customer_rules: tuple[StatusRule, ...] | None = None
    default_status: Status = "occasional"


class PromotionConfig(_Section):
    """Quality gates a new model must pass to become the champion (MLflow alias).

    A gate whose metric the run does not have (no planted truth, no champion yet) is skipped
    and says so; every other gate must pass.
    """

    min_planted_macro_f1: float = Field(default=0.85, ge=0, le=1)
    min_holdout_spend_gini: float = Field(
        default=0.2,
        ge=-1,
        le=1,
        description="normalized Gini of the chosen value model on the holdout",
    )
    min_seed_stability: float = Field(
        default=0.9, ge=-1, le=1, description="adjusted Rand index of statuses between two seeds"
    )
    max_status_share_shift: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="largest allowed change of one status's share vs the champion",
    )
    allow_share_shift: bool = Field(
        default=False, description="set (or --allow-share-shift) when a large shift is expected"
    )
    allow_older: bool = Field(
        default=False,
        description="let a model whose as-of date is older than the champion's become champion "
        "(or --allow-older): a backtest must not replace the current model by default",
    )


class MonitoringConfig(_Section):
    """Checks that warn but never block: how far the data has moved from what a model was
    trained on."""

    drift_warn_psi: float = Field(
        default=0.2,
        gt=0,
        description="warn when a feature's population stability index against the champion's "
        "training data (training) or the bundle's own (scoring) exceeds this; below 0.1 is "
        "commonly read as stable, above 0.25 as a large shift",
    )


class PlaybookEntry(_Section):
    action: str
    channel: str
    cadence_days: int = Field(ge=1, description="least days between two contacts")


class SubSegmentRule(_Section):
    """A named sub-segment: statuses combined with conditions on other columns."""

    name: str
    statuses: tuple[Status, ...] = Field(default=(), description="empty: any status")
    when: dict[str, Condition | tuple[str, ...]] = Field(
        default_factory=dict, description="bounds on numbers, or a list of accepted values"
    )


class TrackingConfig(_Section):
    tracking_uri: str | None = Field(
        default=None,
        description="null: $MLFLOW_TRACKING_URI if set, else sqlite:///mlflow.db with artifacts "
        "in mlartifacts/",
    )
    experiment: str = "loyalty-segmentation"
    registered_model: str = "loyalty-segmentation"
    enabled: bool = True


# The longest forecast horizon: ten years. Customer-value models fitted on a few years of history
# say nothing meaningful further out, and the forecast grid (one step per 30 days) stays small.
MAX_HORIZON_DAYS = 3650
# The as-of dates pandas can represent with a day to spare on either side (1677-09-21 to
# 2262-04-11 are its limits; as-of names a whole day, so its end must be representable too).
MIN_AS_OF, MAX_AS_OF = dt.date(1677, 9, 23), dt.date(2262, 4, 10)


def check_as_of(value: dt.date) -> dt.date:
    """An as-of date within what pandas can represent.

    Raises
    ------
    ValueError
        Naming the range.
    """
    if not MIN_AS_OF <= value <= MAX_AS_OF:
        raise ValueError(
            f"as-of {value.isoformat()} is outside {MIN_AS_OF.isoformat()} to "
            f"{MAX_AS_OF.isoformat()}, the dates that can be represented"
        )
    return value


class Config(_Section):
    """The whole run's configuration, as logged with the run."""

    seed: int = 42
    as_of: dt.date | None = Field(
        default=None,
        description="Observation end; transactions after it are set aside. null: the day of the "
        "last transaction.",
    )
    horizon_days: int = Field(default=180, ge=1, le=MAX_HORIZON_DAYS)
    output: Path = Path("outputs/latest")
    model_path: Path = Field(
        default=Path("models/loyalty-segmentation.joblib"),
        description="Where the fitted bundle is also kept (the last good model).",
    )
    history_path: Path | None = Field(
        default=Path("data/history/status_history.parquet"),
        description="each training appends customer_id, as_of, status, run_id here; null: off",
    )
    data: DataConfig = DataConfig()
    embedded: EmbeddedDataConfig = EmbeddedDataConfig()
    features: FeatureConfig = FeatureConfig()
    engine: EngineConfig = EngineConfig()
    clustering: ClusteringConfig = ClusteringConfig()
    clv: CLVConfig = CLVConfig()
    labeling: LabelingConfig = LabelingConfig()
    tracking: TrackingConfig = TrackingConfig()
    promotion: PromotionConfig = PromotionConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    playbook: dict[Status, PlaybookEntry] | None = Field(
        default=None, description="null uses pipeline/rules/playbook.yaml"
    )
    sub_segments: tuple[SubSegmentRule, ...] | None = Field(
        default=None, description="null uses pipeline/rules/sub_segments.yaml"
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description="threads of the numeric libraries (BLAS, OpenMP) and of the fits run side "
        "by side; null: the cores available to the process. Results do not depend on it.",
    )

    @field_validator("as_of", mode="before")
    @classmethod
    def _parse_as_of(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"'{value}' is not a date in YYYY-MM-DD form") from None
        return check_as_of(value) if isinstance(value, dt.date) else value


def _shipped(name: str) -> Any:
    return yaml.safe_load(
        (resources.files("pipeline") / "rules" / name).read_text(encoding="utf-8")
    )


def shipped_playbook() -> dict[str, PlaybookEntry]:
    return {
        status: PlaybookEntry.model_validate(entry)
        for status, entry in _shipped("playbook.yaml").items()
    }


def shipped_sub_segments() -> tuple[SubSegmentRule, ...]:
    return tuple(SubSegmentRule.model_validate(rule) for rule in _shipped("sub_segments.yaml"))


def load_rules(name: str = "statuses.yaml") -> dict[str, tuple[StatusRule, ...]]:
    """Read the status rules shipped with the package."""
    raw = _shipped(name)
    return {
        key: tuple(StatusRule.model_validate(rule) for rule in raw[key])
        for key in ("cluster_rules", "customer_rules")
    }


def _set_dotted(tree: dict[str, Any], dotted_key: str, value: Any) -> None:
    *parents, leaf = dotted_key.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set '{dotted_key}': '{part}' is not a section")
    node[leaf] = value


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return (
            f"{source}: unknown key '{location}'. Check its spelling against configs/default.yaml"
        )
    return f"{source}: '{location}': {first['msg']}"


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Load and validate a YAML config, then apply dotted-key overrides.

    Parameters
    ----------
    path
        YAML file; None gives the built-in defaults.
    overrides
        e.g. ``{"as_of": "2024-12-31", "data.transactions": "x.csv"}``; None values are skipped
        so that absent command-line flags leave the file's value in place.
    """
    tree: dict[str, Any] = {}
    source = str(path) if path else "defaults"
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error.__class__.__name__})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
        tree = loaded or {}
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, key, value)
    try:
        return Config.model_validate(tree)
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


def config_as_flat_dict(config: Config) -> dict[str, str]:
    """The resolved config as `section.key -> text`, the form MLflow params take."""
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else key, value)
        else:
            flat[prefix] = str(node)

    walk("", config.model_dump(mode="json"))
    return flat
