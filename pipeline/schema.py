"""The transactions contract: which columns, which types, and which rows are set aside.

`clean_transactions` turns a raw table (as read, any column names) into the canonical
`customer_id, timestamp, amount` frame. Problems the user must fix (a missing column, a date
in an unknown format, a non-numeric amount) raise `InputError` naming file, column and row;
rows that are merely unusable are set aside with a reason so that
``rows in == rows used + rows quarantined`` always holds.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import (
    CAMPAIGN_EVENTS,
    CampaignSource,
    CustomersConfig,
    DataConfig,
    LoyaltyEventsConfig,
)
from pipeline.errors import InputError, quote

if TYPE_CHECKING:
    import ibis

    from pipeline.engine import Engine

log = logging.getLogger(__name__)

CUSTOMER_ID = "customer_id"
TIMESTAMP = "timestamp"
AMOUNT = "amount"
# Optional line attributes, kept when mapped (the basket features use them).
QUANTITY = "quantity"
PRODUCT = "product"
INVOICE = "invoice"
DISCOUNT = "discount"
SOURCE_ROW = "source_row"
REASON = "reason"
# Reasons of the rows that are returns or cancellations: the return-rate feature counts them.
RETURN_REASONS = ("cancellation_netted", "cancellation_unmatched")


def reason_counts(set_aside: pd.DataFrame) -> dict[str, int]:
    """How many rows were set aside for each reason, by reason."""
    if set_aside.empty:
        return {}
    counts = set_aside[REASON].value_counts().sort_index()
    return {str(reason): int(count) for reason, count in counts.items()}


class EngineLines(NamedTuple):
    """Clean purchase lines and return lines as tables on a feature engine."""

    lines: ibis.Table
    returns: ibis.Table | None  # None when the column mapping cannot tell returns


class CleanLines(Protocol):
    """What cleaning produced, wherever the clean lines live: in pandas
    (:class:`CleanTransactions`), as Parquet parts on disk (``streaming``) or on Spark
    (``distributed``). Training and scoring read every kind through this interface only."""

    as_of: pd.Timestamp
    rows_in: int

    @property
    def rows_used(self) -> int: ...

    @property
    def rows_quarantined(self) -> int: ...

    def counts_by_reason(self) -> dict[str, int]: ...

    def write_quarantine(self, path: Path) -> None: ...

    def on_engine(self, engine: Engine) -> EngineLines: ...


@dataclass(frozen=True)
class CleanTransactions:
    """Result of cleaning: the rows to use, the rows set aside, and the as-of date applied.

    ``returns`` holds the return and cancellation lines observed by as-of (``customer_id``,
    ``timestamp`` and the positive ``amount`` returned; they are also in ``quarantine``), or
    None when the column mapping cannot tell returns at all.
    """

    transactions: pd.DataFrame
    quarantine: pd.DataFrame
    as_of: pd.Timestamp
    rows_in: int
    returns: pd.DataFrame | None = None

    @property
    def rows_used(self) -> int:
        return len(self.transactions)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine)

    def write_quarantine(self, path: Path) -> None:
        """Every row set aside, with its place in the file and its reason, as CSV."""
        from pipeline.io import write_frame

        write_frame(self.quarantine, path)

    def on_engine(self, engine: Engine) -> EngineLines:
        """The clean lines (and returns) handed to a feature engine from pandas."""
        return EngineLines(
            engine.table(self.transactions),
            engine.table(self.returns) if self.returns is not None else None,
        )

    def counts_by_reason(self) -> dict[str, int]:
        return reason_counts(self.quarantine)


# Lines that are never a purchase, whatever the shop: a code naming an adjustment or a test
# (ADJUST, ADJUST2, TEST001, test-2). Real shops add such lines by hand between years, so a list
# of the codes seen so far misses the next one; their names do not change. Only the word and a
# number: a product named TESTAMENT or ADJUSTABLE is a product.
ADJUSTMENT_OR_TEST = r"(?i)(adjust|test)[\W_]*\d*"


def non_product(product: pd.Series, data: DataConfig) -> pd.Series:
    """Which lines are not purchases: a listed code, an adjustment or test by its name, or (with
    ``data.product_code_pattern``) a code outside the shop's product-code pattern."""
    known = product.notna()
    flagged = product.isin(data.non_product_codes).fillna(False)
    flagged |= product.str.fullmatch(ADJUSTMENT_OR_TEST).fillna(False)
    if data.product_code_pattern is not None:
        flagged |= known & ~product.str.fullmatch(data.product_code_pattern).fillna(False)
    return flagged.astype(bool)


def _first_bad_row(mask: pd.Series) -> int:
    # Rows are reported 1-based and without the header, as a spreadsheet user counts them; the
    # index holds each row's 0-based place in the file (also inside a partition of it).
    return int(mask.index[mask.to_numpy()].min()) + 1


class Problems:
    """Every reason an input cannot be used, gathered so that the first one in the file is told.

    Checks record problems instead of raising, so that a file split into partitions (Spark)
    reports the same first problem as the whole file: the one at the earliest row (problems of
    a whole column first), with the rows counted over every partition. Warnings about ids
    (:class:`IdNotice`) are gathered the same way, so that a partitioned file tells each once,
    counted over every partition.
    """

    def __init__(self) -> None:
        self.found: list[InputError] = []
        self.notices: list[IdNotice] = []

    def add(self, error: InputError) -> None:
        self.found.append(error)

    def raise_first(self) -> None:
        first = first_problem(self.found)
        if first is not None:
            raise first


@dataclass(frozen=True)
class IdNotice:
    """Ids a user should hear about but that do not stop the run (see :func:`tell_id_notices`)."""

    check: str  # MERGED_IDS or MIXED_SCRIPT_IDS
    source: str
    column: str | None
    count: int
    example: str


MERGED_IDS, MIXED_SCRIPT_IDS = "merged_ids", "mixed_script_ids"
# One template per kind: the command line shows a repeated warning template once per run.
_NOTICE_TEMPLATE = {
    MERGED_IDS: "%s, column '%s': %d ids became the same as another id once normalised (NFKC, "
    "zero-width characters removed), e.g. '%s'; they are counted as one customer",
    MIXED_SCRIPT_IDS: "%s, column '%s': %d ids mix ASCII letters with letters of another script "
    "(a look-alike such as Cyrillic 'С' for 'C'?), e.g. '%s'; each is its own customer",
}


def tell_id_notices(notices: list[IdNotice]) -> None:
    """Log one warning per kind of notice, its count summed over the partitions that found it."""
    for check in (MERGED_IDS, MIXED_SCRIPT_IDS):
        same = [notice for notice in notices if notice.check == check]
        if same:
            first = min(same, key=lambda notice: notice.example)
            log.warning(
                _NOTICE_TEMPLATE[check],
                first.source,
                first.column,
                sum(notice.count for notice in same),
                quote(first.example),
            )


def first_problem(found: list[InputError]) -> InputError | None:
    """The problem to tell: the earliest row (whole-column problems first), counts summed."""
    if not found:
        return None
    first = min(found, key=lambda e: -1 if e.row is None else e.row)
    if first.count is None:
        return first
    same = [e.count or 0 for e in found if e.check == first.check]
    return replace(first, count=sum(same))


# timestamp_format values for numbers counting from 1970-01-01 UTC.
EPOCH_UNITS = {"epoch_s": "s", "epoch_ms": "ms"}


def _parse_timestamps(
    values: pd.Series,
    *,
    fmt: str | None,
    source: str,
    column: str,
    problems: Problems | None = None,
) -> pd.Series:
    far = pd.Index([])
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        text = values.astype("string").str.strip()
        try:
            if fmt in EPOCH_UNITS:
                since_epoch = pd.to_numeric(text, errors="coerce")
                parsed = pd.to_datetime(since_epoch, unit=EPOCH_UNITS[fmt], errors="coerce")
            else:
                parsed = _parse_text_timestamps(text, fmt)
        except (ValueError, TypeError, OverflowError):
            parsed = pd.Series(pd.NaT, index=values.index)
        bad = parsed.isna() & text.notna() & (text != "")
        if bad.any():
            # Real dates beyond what pandas can hold (the 9999-12-31 "no end" sentinel) are
            # after any as-of date: they become FAR_FUTURE and are set aside, not refused.
            years = _years_of(text[bad], fmt)
            far = years.index[(years >= pd.Timestamp.max.year).to_numpy()]
            bad.loc[far] = False
            early = years.index[(years <= pd.Timestamp.min.year).to_numpy()]
            if len(early):
                row = int(early.min()) + 1
                _report(
                    InputError(
                        source,
                        f"'{quote(text.loc[row - 1])}' is before 1678, earlier than any date "
                        "pandas can hold",
                        "Fix the date; dates from 1678 to 2262 are read",
                        column=column,
                        row=row,
                    ),
                    problems,
                )
                bad.loc[early] = False
        if bad.any():
            row = _first_bad_row(bad)
            value = text.loc[row - 1]
            expected = f"the format '{fmt}'" if fmt else "ISO 8601 (YYYY-MM-DD[ HH:MM:SS])"
            hint = "Fix the value or set data.timestamp_format in the config to the file's format"
            if fmt is None and value.isdigit() and 9 <= len(value) <= 13:
                hint += " (epoch_s or epoch_ms for seconds or milliseconds since 1970)"
            _report(
                InputError(
                    source,
                    f"cannot read '{quote(value)}' as a date in {expected}",
                    hint,
                    column=column,
                    row=row,
                ),
                problems,
            )
    if getattr(parsed.dt, "tz", None) is not None:
        # Mixed offsets would make day boundaries ambiguous: compare everything in UTC.
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    if parsed.dtype != "datetime64[ns]":
        # pandas may read (or have stored) dates at a coarser resolution that holds years
        # beyond 2262: those are after any as-of date, those before 1677 an error.
        late = (parsed > pd.Timestamp.max).fillna(False)
        early = (parsed < pd.Timestamp.min).fillna(False)
        if early.any():
            row = _first_bad_row(early)
            _report(
                InputError(
                    source,
                    f"'{parsed.loc[row - 1]}' is before 1678, earlier than any date pandas can hold",
                    "Fix the date; dates from 1678 to 2262 are read",
                    column=column,
                    row=row,
                ),
                problems,
            )
        far = far.union(parsed.index[late.to_numpy()])
        parsed = parsed.mask(late | early)
    parsed = parsed.astype("datetime64[ns]")
    if len(far):
        parsed.loc[far] = FAR_FUTURE
    return parsed


# Stands for a date after 2262-04-11, the last day pandas can hold (``9999-12-31``, the usual
# "no end" sentinel): later than any as-of date, so such rows are set aside as after_as_of.
FAR_FUTURE = pd.Timestamp.max


def _years_of(text: pd.Series, fmt: str | None) -> pd.Series:
    """The year of each value that is a real date pandas cannot hold; NA for anything else.

    Only the values pandas could not read get here, and each distinct one is parsed once.
    """
    years: dict[str, float] = {}
    for value in text.dropna().unique():
        try:
            if fmt in EPOCH_UNITS:
                seconds = float(value) / (1000 if fmt == "epoch_ms" else 1)
                # Too large for a Python date too: certainly after any as-of date.
                years[value] = 1970 + seconds / 31_556_952
                continue
            parsed = (
                dt.datetime.fromisoformat(value)
                if fmt is None
                else dt.datetime.strptime(value, fmt)
            )
            years[value] = parsed.year
        except (ValueError, TypeError, OverflowError):
            continue
    return text.map(years).astype("float64")


def _parse_text_timestamps(text: pd.Series, fmt: str | None) -> pd.Series:
    """Timestamps written as text, in ``fmt`` (strftime) or ISO 8601."""
    with warnings.catch_warnings():
        # pandas warns that mixed offsets will need utc=True: they get it just below.
        warnings.simplefilter("ignore", FutureWarning)
        parsed = pd.to_datetime(text, format=fmt or "ISO8601", errors="coerce")
    if not pd.api.types.is_datetime64_any_dtype(parsed):
        # Mixed UTC offsets come back as objects: read them all in UTC (a value without an
        # offset is taken as UTC too).
        parsed = pd.to_datetime(text, format=fmt or "ISO8601", errors="coerce", utc=True)
    return parsed


def _report(error: InputError, problems: Problems | None) -> None:
    if problems is None:
        raise error
    problems.add(error)


def _parse_amounts(
    values: pd.Series, *, source: str, column: str, problems: Problems | None = None
) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        _report(InputError(source, "holds true/false values, not amounts", column=column), problems)
        return pd.Series(float("nan"), index=values.index)
    if pd.api.types.is_numeric_dtype(values):
        parsed = values.astype("float64")
    else:
        text = values.astype("string").str.strip()
        parsed = pd.to_numeric(text, errors="coerce").astype("float64")
        bad = parsed.isna() & text.notna() & (text != "")
        if bad.any():
            row = _first_bad_row(bad)
            _report(
                InputError(
                    source,
                    f"cannot read '{quote(text.loc[row - 1])}' as a number",
                    "Amounts must be plain numbers with a '.' decimal point and no currency sign",
                    column=column,
                    row=row,
                ),
                problems,
            )
    too_large = (parsed.abs() >= MAX_AMOUNT).fillna(False)  # inf and -inf included
    if too_large.any():
        row = _first_bad_row(too_large)
        _report(
            InputError(
                source,
                f"{parsed.loc[row - 1]:g} is not a finite amount below {MAX_AMOUNT:.0e}",
                "Fix the value (inf, Infinity and overflowed exports are not amounts)",
                column=column,
                row=row,
            ),
            problems,
        )
    return parsed


# The engine sums amounts as DECIMAL(18, 4): 14 digits before the point, so 1e14 and above
# overflow (and no shop's single line is worth that).
MAX_AMOUNT = 1e14

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0", ""}


def _parse_flags(
    values: pd.Series, *, source: str, column: str, problems: Problems | None = None
) -> pd.Series:
    """A true/false column (also yes/no, 1/0); missing values are false."""
    if pd.api.types.is_bool_dtype(values):
        return values.fillna(False).astype(bool)
    text = values.astype("string").str.strip().str.lower().fillna("")
    bad = ~text.isin(_TRUE | _FALSE)
    if bad.any():
        row = _first_bad_row(bad)
        _report(
            InputError(
                source,
                f"cannot read '{quote(values.loc[row - 1])}' as true or false",
                "Mark return lines with true/false, yes/no or 1/0",
                column=column,
                row=row,
            ),
            problems,
        )
    return text.isin(_TRUE)


# Characters that are invisible in an id and make it a different customer (zero-width space,
# joiners, word joiner, byte-order mark, soft hyphen): removed when ids are normalised.
_ZERO_WIDTH = "[\u200b\u200c\u200d\u2060\ufeff\u00ad]"
# Control characters (NUL, tab or line break inside an id, DEL, C1 codes): never part of a real
# id, and a NUL byte cuts an id short downstream.
_CONTROL = r"[\x00-\x1f\x7f-\x9f]"
# Every character Python's ``str.strip()`` strips (those for which ``str.isspace()`` holds),
# spelled out: ids are trimmed in Arrow, and Arrow's own notion of whitespace is another set.
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _arrow_text(values: pd.Series) -> pd.Series:
    """``values`` as text (formatted as pandas formats them) in Arrow storage, stripped as
    Python strips: its ``.str`` checks then run in Arrow's compute functions."""
    return values.astype("string").astype("string[pyarrow]").str.strip(PYTHON_WHITESPACE)


def _arrow_replace(text: pd.Series, pattern: str, replacement: str) -> pd.Series:
    """A regular-expression replacement on Arrow-stored text, by Arrow's own function (pandas'
    ``.str.replace`` runs Python per row when the replacement refers to a group: 8.4 s
    against 0.4 s on 5M ids)."""
    replaced = pc.replace_substring_regex(
        pa.array(text.array), pattern=pattern, replacement=replacement
    )
    return pd.Series(pd.arrays.ArrowStringArray(replaced), index=text.index)


def _customer_ids(
    values: pd.Series,
    *,
    source: str | None = None,
    column: str | None = None,
    problems: Problems | None = None,
) -> pd.Series:
    """Ids as text: stripped, Unicode-normalised (NFKC, zero-width characters removed).

    With ``source``, an id holding a control character is a problem naming its row, and ids
    that normalising made equal to another id (or that mix ASCII letters with other scripts,
    such as a Cyrillic look-alike) are reported as a warning with a count.
    """
    # In Arrow until the end (the checks and replacements below run in its compute functions),
    # then back to pandas' string storage, as every later step expects.
    ids = _arrow_text(values)
    if source is not None:
        control = ids.str.contains(_CONTROL, regex=True).fillna(False)
        if control.any():
            row = _first_bad_row(control)
            _report(
                InputError(
                    source,
                    f"id '{quote(ids.loc[row - 1])}' holds a control character (NUL, tab, line "
                    "break or similar)",
                    "Remove control characters from the ids: they are not part of any real id",
                    column=column,
                    row=row,
                    count=int(control.sum()),
                    check="control_characters",
                ),
                problems,
            )
    ids = _normalise_ids(ids, source=source, column=column, problems=problems)
    # Parquet files often store ids as floats (12346.0) because of missing values; the id is
    # the integer, so drop the spurious fraction rather than invent a new customer.
    # (ASCII digits: Arrow's regular expressions know no others, and a float never prints any.)
    ids = _arrow_replace(ids, r"^([0-9]+)\.0+$", r"\1").astype("string")
    return ids.mask(ids == "")


def customer_id_keys(values: pd.Series) -> pd.Series:
    """Ids exactly as the cleaning makes them, without its checks and warnings: what a reader
    that splits a file by customer keys its partitions by."""
    return _customer_ids(values)


def normalise_id(value: str) -> str:
    """One id as the pipeline knows it: NFKC, zero-width characters removed, stripped.

    Full-width ``ＣＵＳ１`` is ``CUS1``. The on-disk reader's partition key (SQL) calls it for
    ids outside ASCII, so that ids that become one customer are cleaned in one partition.
    """
    return unicodedata.normalize("NFKC", re.sub(_ZERO_WIDTH, "", value)).strip()


# Ids with a character outside ASCII: the only ones normalising can change.
NON_ASCII = r"[^\x00-\x7f]"


def _normalise_ids(
    ids: pd.Series, *, source: str | None, column: str | None, problems: Problems | None
) -> pd.Series:
    """:func:`normalise_id` on every id; ASCII ids, nearly all of them, are left alone without
    being looked at one by one.

    With ``source``, ids that normalising made equal to another id, or that mix ASCII letters
    with another script, are notices: gathered in ``problems`` (told once by the caller over
    every partition), or told at once without it.
    """
    special = ids.str.contains(NON_ASCII, regex=True).fillna(False)
    if not special.any():
        return ids
    before = ids[special]
    after = before.map(normalise_id, na_action="ignore").astype(ids.dtype)
    normalised = ids.copy()
    normalised.loc[special] = after
    if source is None:
        return normalised
    notices = []
    raw_ids = set(ids.dropna().unique())
    changed = before[after != before]
    merged = {
        value
        for value, new in zip(changed, after[after != before], strict=True)
        if new in raw_ids or (after == new).sum() > 1
    }
    if merged:
        notices.append(IdNotice(MERGED_IDS, source, column, len(merged), min(merged)))
    still = normalised[special]
    mixed = (
        still.str.contains("[A-Za-z]", regex=True) & still.str.contains(NON_ASCII, regex=True)
    ).fillna(False)
    if mixed.any():
        notices.append(
            IdNotice(MIXED_SCRIPT_IDS, source, column, int(mixed.sum()), min(still[mixed]))
        )
    if problems is None:
        tell_id_notices(notices)
    else:
        problems.notices.extend(notices)
    return normalised


def _net_cancellations(
    frame: pd.DataFrame,
    reasons: pd.Series,
    cancellations: pd.Series,
    *,
    quantity: pd.Series | None,
    product: pd.Series | None,
) -> None:
    """Net each cancellation against the latest earlier purchase it can cancel (in place).

    A cancellation matches the same customer's latest purchase of the same product (any product
    when there is no product column) at or before its time. The purchase's amount is reduced in
    proportion to the quantity cancelled (the amount, without a quantity column); a purchase
    cancelled in full is set aside as ``cancelled``. Cancellation rows are set aside as
    ``cancellation_netted`` or, with nothing to cancel, ``cancellation_unmatched``.
    """
    size = (quantity if quantity is not None else frame[AMOUNT]).abs()
    keys = pd.DataFrame(
        {
            CUSTOMER_ID: frame[CUSTOMER_ID].astype("string"),
            "product": product.fillna("") if product is not None else "",
            TIMESTAMP: frame[TIMESTAMP],
            "size": size,
        }
    )
    purchases = reasons.isna() & ~cancellations & (frame[AMOUNT] > 0)
    left = (
        keys[cancellations].reset_index(names="cancel_row").sort_values(TIMESTAMP, kind="mergesort")
    )
    right = (
        keys[purchases].reset_index(names="purchase_row").sort_values(TIMESTAMP, kind="mergesort")
    )
    matched = pd.merge_asof(
        left,
        right[[TIMESTAMP, CUSTOMER_ID, "product", "purchase_row"]],
        on=TIMESTAMP,
        by=[CUSTOMER_ID, "product"],
        direction="backward",
    )
    hit = matched["purchase_row"].notna()
    reasons.loc[matched.loc[hit, "cancel_row"].to_numpy()] = "cancellation_netted"
    reasons.loc[matched.loc[~hit, "cancel_row"].to_numpy()] = "cancellation_unmatched"
    cancelled = matched[hit].groupby("purchase_row")["size"].sum()
    rows = cancelled.index.astype("int64")
    remaining = (size.loc[rows] - cancelled.to_numpy()).clip(lower=0)
    fully = remaining <= 0
    reasons.loc[rows[fully.to_numpy()]] = "cancelled"
    partial = rows[~fully.to_numpy()]
    frame.loc[partial, AMOUNT] *= (remaining[~fully] / size.loc[partial]).to_numpy()
    if QUANTITY in frame:
        frame.loc[partial, QUANTITY] = remaining[~fully].to_numpy()


def mapped_columns(data: DataConfig) -> tuple[dict[str, str], tuple[str, ...]]:
    """The file's column for each mapped field, and the discount columns (possibly several)."""
    mapped = {field: name for field, name in data.columns.model_dump().items() if name is not None}
    discount = mapped.pop(DISCOUNT, None)
    return mapped, ((discount,) if isinstance(discount, str) else tuple(discount or ()))


def returns_identifiable(data: DataConfig) -> bool:
    """Whether the mapping can tell return or cancellation lines (and so a return rate exists)."""
    columns = data.columns
    return any(c is not None for c in (columns.invoice, columns.quantity, columns.returns))


def check_columns(columns: list[str], *, data: DataConfig, source: str) -> None:
    """Every mapped column is in the file.

    Raises
    ------
    InputError
        Naming the first missing column and the columns found.
    """
    mapped, discount_columns = mapped_columns(data)
    missing = [name for name in (*mapped.values(), *discount_columns) if name not in columns]
    if missing:
        available = ", ".join(quote(c, 40) for c in list(columns)[:12])
        raise InputError(
            source,
            f"required column missing (found: {available})",
            "Map the file's column names under data.columns in the config",
            column=missing[0],
        )


@dataclass
class ClassifiedRows:
    """Rows of one partition, typed, with every reason known before the as-of date is applied."""

    raw: pd.DataFrame
    frame: pd.DataFrame
    reasons: pd.Series
    is_cancellation: pd.Series
    quantity: pd.Series | None
    product: pd.Series | None
    problems: Problems

    def latest_usable(self) -> pd.Timestamp | None:
        """The last timestamp of a usable row (the default as-of), None without one."""
        times = self.frame.loc[self.reasons.isna(), TIMESTAMP]
        return None if times.empty else times.max()


@dataclass(frozen=True)
class CleanPart:
    """The outcome of cleaning one partition (the whole file is one)."""

    transactions: pd.DataFrame
    quarantine: pd.DataFrame
    returns: pd.DataFrame


def classify_rows(raw: pd.DataFrame, *, data: DataConfig, source: str) -> ClassifiedRows:
    """Type the mapped columns and find every reason to set a row aside but the as-of date.

    ``raw`` holds all rows of some customers (the whole file, or a partition of it by customer:
    duplicates and cancellations never cross customers), indexed by each row's 0-based place in
    the file. Problems the user must fix are recorded in ``problems``, not raised.
    """
    raw = raw.sort_index()
    problems = Problems()
    columns = data.columns
    mapped, discount_columns = mapped_columns(data)

    def amounts(field: str) -> pd.Series:
        return _parse_amounts(
            raw[mapped[field]], source=source, column=mapped[field], problems=problems
        )

    quantity = amounts(QUANTITY) if QUANTITY in mapped else None
    price = amounts("unit_price") if "unit_price" in mapped else None
    amount = amounts(AMOUNT) if AMOUNT in mapped else quantity * price
    frame = pd.DataFrame(
        {
            CUSTOMER_ID: _customer_ids(
                raw[columns.customer_id],
                source=source,
                column=columns.customer_id,
                problems=problems,
            ),
            TIMESTAMP: _parse_timestamps(
                raw[columns.timestamp],
                fmt=data.timestamp_format,
                source=source,
                column=columns.timestamp,
                problems=problems,
            ),
            AMOUNT: amount,
        },
        index=raw.index,
    )
    product = raw[mapped[PRODUCT]].astype("string").str.strip() if PRODUCT in mapped else None
    if quantity is not None:
        frame[QUANTITY] = quantity
    if product is not None:
        frame[PRODUCT] = product
    if INVOICE in mapped:
        frame[INVOICE] = raw[mapped[INVOICE]].astype("string").str.strip()
    if discount_columns:
        frame[DISCOUNT] = sum(
            _parse_amounts(raw[name], source=source, column=name, problems=problems).fillna(0.0)
            for name in discount_columns
        ).abs()
    reasons = pd.Series(pd.NA, index=raw.index, dtype="string")

    def set_aside(mask: pd.Series, reason: str) -> None:
        reasons.loc[mask & reasons.isna()] = reason

    set_aside(frame[CUSTOMER_ID].isna(), "missing_customer_id")
    set_aside(frame[TIMESTAMP].isna(), "missing_timestamp")
    # After any as-of date there can be (9999-12-31 and the like): set aside as such now, so
    # that they never become the default as-of either.
    set_aside(frame[TIMESTAMP] == FAR_FUTURE, "after_as_of")
    set_aside(frame[AMOUNT].isna(), "missing_amount")

    duplicated = exact_duplicates(raw)
    if duplicated.any() and data.duplicates == "error":
        problems.add(
            InputError(
                source,
                "exact duplicate of an earlier row",
                "Set data.duplicates: quarantine to set them aside, or keep if they are real "
                "repeat items",
                row=_first_bad_row(duplicated),
                count=int(duplicated.sum()),
                check="duplicates",
            )
        )
    if data.duplicates == "quarantine":
        set_aside(duplicated, "duplicate")
    if product is not None:
        set_aside(non_product(product, data), "non_product")
    if price is not None:
        bad_price = (price <= 0).fillna(False)
        if bad_price.any() and data.non_positive_prices == "error":
            row = _first_bad_row(bad_price)
            problems.add(
                InputError(
                    source,
                    f"unit price {price.loc[row - 1]:g} is not positive",
                    "Set data.non_positive_prices: quarantine to set such rows aside",
                    column=mapped["unit_price"],
                    row=row,
                )
            )
        set_aside(bad_price, "non_positive_price")

    is_cancellation = pd.Series(False, index=raw.index)
    if INVOICE in mapped:
        invoices = raw[mapped[INVOICE]].astype("string").str.strip()
        is_cancellation |= invoices.str.startswith(data.cancellation_prefix).fillna(False)
    if quantity is not None:
        is_cancellation |= (quantity < 0).fillna(False)
    if "returns" in mapped:
        is_cancellation |= _parse_flags(
            raw[mapped["returns"]], source=source, column=mapped["returns"], problems=problems
        )

    negative = (frame[AMOUNT] < 0) & ~is_cancellation & reasons.isna()
    if negative.any() and data.negative_amounts == "error":
        row = _first_bad_row(negative)
        problems.add(
            InputError(
                source,
                f"negative amount {frame[AMOUNT].loc[row - 1]:g}",
                "Returns need their own handling: set data.negative_amounts: quarantine to set "
                "them aside",
                column=mapped.get(AMOUNT, mapped.get(QUANTITY)),
                row=row,
                count=int(negative.sum()),
                check="negative_amounts",
            )
        )
    set_aside(negative, "negative_amount")
    return ClassifiedRows(raw, frame, reasons, is_cancellation, quantity, product, problems)


# Above this share of rows whose numeric and time columns repeat, the whole-row comparison
# runs on every row at once: narrowing first would not save the text columns' hashing.
DUPLICATE_CANDIDATES_SHARE = 0.5


def _numeric_key(raw: pd.DataFrame, positions: list[int]) -> np.ndarray:
    """One 64-bit key per row from its plain numeric and time columns: rows equal in them have
    equal keys (0.0 and -0.0, and every NaN, made one value, as pandas compares them); unequal
    rows may share a key, which only makes them compared whole."""
    key = np.zeros(len(raw), dtype="uint64")
    with np.errstate(over="ignore"):
        for position in positions:
            values = raw.iloc[:, position].to_numpy()
            if values.dtype.kind == "f":
                values = values.astype("float64") + 0.0
                values[np.isnan(values)] = np.nan
            else:
                values = values.astype("int64", copy=False)
            key = (key ^ values.view("uint64")) * np.uint64(0x9E3779B97F4A7C15)
    return key


def exact_duplicates(raw: pd.DataFrame) -> pd.Series:
    """``raw.duplicated(keep="first")``: rows equal in every column to an earlier row.

    An exact duplicate repeats every column, so only rows whose numeric and time columns
    repeat somewhere can be one, and only those are compared whole: hashing every row's text
    (the ids above all) is most of the cost (10M lines of id, time and amount: 9.4 s for the
    whole rows, 3.3 s for the narrowed comparison).
    """
    plain = [
        position
        for position, dtype in enumerate(raw.dtypes)
        if isinstance(dtype, np.dtype) and dtype.kind in "biufM"
    ]
    if not plain or len(plain) == raw.shape[1]:
        return raw.duplicated(keep="first")
    candidates = pd.Series(_numeric_key(raw, plain)).duplicated(keep=False).to_numpy()
    if candidates.mean() > DUPLICATE_CANDIDATES_SHARE:
        return raw.duplicated(keep="first")
    duplicated = np.zeros(len(raw), dtype=bool)
    positions = np.flatnonzero(candidates)
    duplicated[positions] = raw.iloc[positions].duplicated(keep="first").to_numpy()
    return pd.Series(duplicated, index=raw.index)


def finish_rows(rows: ClassifiedRows, *, data: DataConfig, as_of: pd.Timestamp) -> CleanPart:
    """Apply the as-of date and net the cancellations it lets be seen."""
    frame, reasons = rows.frame.copy(), rows.reasons.copy()
    # as_of names a whole day: everything up to its end is observed.
    after = frame[TIMESTAMP] >= as_of + pd.Timedelta(days=1)
    reasons.loc[after & reasons.isna()] = "after_as_of"
    # Only cancellations observed by as_of may cancel anything: later ones are not yet known.
    cancellations = rows.is_cancellation & reasons.isna()
    if cancellations.any():
        if data.cancellations == "net":
            _net_cancellations(
                frame, reasons, cancellations, quantity=rows.quantity, product=rows.product
            )
        else:
            reasons.loc[cancellations] = "cancellation"

    kept = reasons.isna()
    aside = np.flatnonzero(~kept.to_numpy())
    aside_reasons = reasons.iloc[aside]
    quarantine = rows.raw.iloc[aside].copy()
    quarantine.insert(0, SOURCE_ROW, (rows.raw.index[aside] + 1).astype("int64"))
    quarantine[REASON] = aside_reasons.astype(str).to_numpy()
    # Compared among the rows set aside only: a text comparison over every kept row (their
    # reason is missing) cost 4.4 s on 10M lines.
    returned = np.zeros(len(reasons), dtype=bool)
    returned[aside] = aside_reasons.isin(RETURN_REASONS).to_numpy(dtype=bool)
    returns = frame.loc[returned, [CUSTOMER_ID, TIMESTAMP, AMOUNT]].assign(
        **{AMOUNT: lambda lines: lines[AMOUNT].abs()}
    )
    return CleanPart(frame.loc[kept], quarantine, returns)


def _in_customer_order(lines: pd.DataFrame) -> pd.DataFrame:
    """Lines by customer, then time, ties in their present order: a stable sort in Arrow (5M
    lines: 5.9 s against 12.3 s for pandas' mergesort on two columns). Arrow orders text by its
    UTF-8 bytes, which is the order of the code points, as Python's; missing values go last."""
    keys = pa.table(
        {
            "customer": pa.array(lines[CUSTOMER_ID].array),
            "time": pa.array(lines[TIMESTAMP].to_numpy()),
        }
    )
    # Arrow's default puts missing values last, as pandas does.
    order = pc.sort_indices(keys, sort_keys=[("customer", "ascending"), ("time", "ascending")])
    return lines.take(order.to_numpy())


def combine_parts(
    parts: list[CleanPart],
    *,
    rows_in: int,
    as_of: pd.Timestamp,
    source: str,
    identifiable: bool = True,
) -> CleanTransactions:
    """Put the partitions' outcomes together, in one canonical order whatever the partitioning.

    ``identifiable``: whether the mapping can tell returns at all (:func:`returns_identifiable`);
    when it cannot, ``returns`` is None rather than empty, and no return rate is made.

    Raises
    ------
    InputError
        Nothing is left on or before the as-of date.
    """
    transactions = pd.concat([part.transactions for part in parts])
    if transactions.empty:
        raise InputError(
            source,
            f"no transactions on or before the as-of date {as_of.date()}",
            "Choose a later --as-of",
        )
    quarantine = pd.concat([part.quarantine for part in parts]).sort_values(
        SOURCE_ROW, kind="mergesort"
    )
    # Ties (two lines of one customer at one moment) keep the file's order.
    transactions = _in_customer_order(transactions.sort_index())
    returns = pd.concat([part.returns for part in parts]).sort_index()
    returns = _in_customer_order(returns).reset_index(drop=True)
    return CleanTransactions(
        transactions=transactions.reset_index(drop=True),
        quarantine=quarantine.reset_index(drop=True),
        as_of=as_of,
        rows_in=rows_in,
        returns=returns if identifiable else None,
    )


def clean_transactions(
    raw: pd.DataFrame,
    *,
    data: DataConfig,
    source: str,
    as_of: pd.Timestamp | None = None,
) -> CleanTransactions:
    """Validate a raw transactions table and split it into usable and set-aside rows.

    Parameters
    ----------
    raw
        One row per transaction, columns named as in ``data.columns``.
    data
        Column mapping and the policies for duplicates, negative amounts, cancellations,
        non-product codes and non-positive prices.
    source
        The file name used in error messages.
    as_of
        Observation end (inclusive, whole day). None: the day of the last transaction.

    Returns
    -------
    CleanTransactions
        ``transactions`` has one row per usable transaction with columns ``customer_id``
        (string), ``timestamp`` (datetime64[ns]), ``amount`` (float) and the optional line
        columns that are mapped, sorted by customer and time; ``quarantine`` holds the original
        columns of the rows set aside, plus ``source_row`` and ``reason``.

    Raises
    ------
    InputError
        The first problem in the file that the user must fix (see :class:`Problems`).
    """
    raw = raw.reset_index(drop=True)
    check_columns(list(raw.columns), data=data, source=source)
    if raw.empty:
        raise InputError(
            source, "the file has a header but no rows", "Point at a file with transactions"
        )
    rows = classify_rows(raw, data=data, source=source)
    rows.problems.raise_first()
    tell_id_notices(rows.problems.notices)
    resolved = resolve_as_of(as_of, [rows.latest_usable()], source=source)
    return combine_parts(
        [finish_rows(rows, data=data, as_of=resolved)],
        rows_in=len(raw),
        as_of=resolved,
        source=source,
        identifiable=returns_identifiable(data),
    )


def resolve_as_of(
    as_of: pd.Timestamp | None, latest: list[pd.Timestamp | None], *, source: str
) -> pd.Timestamp:
    """The as-of day: the one given, else the day of the last usable row (of any partition)."""
    usable = [t for t in latest if t is not None and not pd.isna(t)]
    if not usable:
        raise InputError(source, "no usable rows (every row lacks a customer, date or amount)")
    return pd.Timestamp(as_of if as_of is not None else max(usable)).normalize()


def clean_customers(raw: pd.DataFrame, *, config: CustomersConfig, source: str) -> pd.DataFrame:
    """Validate a customers table: one row per customer, typed attributes, canonical names.

    Returns
    -------
    pd.DataFrame
        ``customer_id`` plus every mapped attribute (``birth_date`` and ``signup_date`` as
        datetimes; ``age_band``, ``gender``, ``location``, ``tier`` and the ``extra`` columns,
        under their own names, as text).
    """
    raw = raw.reset_index(drop=True)
    extra = config.columns.extra
    mapped = {
        field: name
        for field, name in config.columns.model_dump(exclude={"extra"}).items()
        if name is not None
    }
    missing = [name for name in [*mapped.values(), *extra] if name not in raw.columns]
    if missing:
        raise InputError(
            source,
            "column of the customers mapping missing",
            "Fix data.customers.columns in the config",
            column=missing[0],
        )
    if raw.empty:
        raise InputError(source, "the customers file has a header but no rows")
    frame = pd.DataFrame(
        {
            CUSTOMER_ID: _customer_ids(
                raw[mapped[CUSTOMER_ID]], source=source, column=mapped[CUSTOMER_ID]
            )
        }
    )
    duplicated = frame[CUSTOMER_ID].duplicated() & frame[CUSTOMER_ID].notna()
    if duplicated.any():
        raise InputError(
            source,
            f"customer '{quote(frame[CUSTOMER_ID][duplicated].iloc[0])}' appears more than once",
            "A customers table needs one row per customer",
            column=mapped[CUSTOMER_ID],
            row=_first_bad_row(duplicated),
        )
    for field in ("birth_date", "signup_date"):
        if field in mapped:
            frame[field] = _parse_timestamps(
                raw[mapped[field]], fmt=config.date_format, source=source, column=mapped[field]
            )
    for field in ("age_band", "gender", "location", "tier"):
        if field in mapped:
            frame[field] = raw[mapped[field]].astype("string").str.strip()
    for name in extra:
        frame[name] = raw[name].astype("string").str.strip()
    return frame[frame[CUSTOMER_ID].notna()].reset_index(drop=True)


# -- the optional event tables: loyalty-programme events and campaign interactions ------------
POINTS_EARNED = "points_earned"
POINTS_REDEEMED = "points_redeemed"
CAMPAIGN_ID = "campaign_id"
CHANNEL = "channel"
EVENT = "event"


@dataclass(frozen=True)
class CleanEvents:
    """An optional event table after validation: the rows to use and the rows set aside.

    ``set_aside`` holds the original columns of the rows that cannot be used (no customer id,
    say) with ``source_row``, ``reason`` and ``source_file``, so that
    ``rows_in == len(events) + len(set_aside)``.
    """

    events: pd.DataFrame
    set_aside: pd.DataFrame
    rows_in: int

    def counts_by_reason(self) -> dict[str, int]:
        return reason_counts(self.set_aside)


def _mapped_columns(
    raw: pd.DataFrame, columns: dict[str, str | None], *, source: str, key: str
) -> dict[str, str]:
    """The mapping's non-null columns, checked against the file (the first one missing is named)."""
    mapped = {field: name for field, name in columns.items() if name is not None}
    missing = [name for name in mapped.values() if name not in raw.columns]
    if missing:
        available = ", ".join(quote(c, 40) for c in raw.columns[:12])
        raise InputError(
            source,
            f"column of the {key} mapping missing (found: {available})",
            f"Map the file's column names under data.{key}.columns in the config",
            column=missing[0],
        )
    if raw.empty:
        raise InputError(
            source, "the file has a header but no rows", f"Point data.{key} at a file with rows"
        )
    return mapped


def _event_kinds(
    values: pd.Series,
    kinds: dict[str, tuple[str, ...]],
    *,
    source: str,
    column: str,
    key: str,
) -> pd.Series:
    """Each row's kind (a key of ``kinds``) from the event column; NA where the cell is empty.

    Values are matched ignoring case and surrounding spaces. A value listed nowhere is an
    error: an event type nobody mapped would otherwise vanish from every count unnoticed.
    """
    text = values.astype("string").str.strip()
    lookup = {value.strip().casefold(): kind for kind, listed in kinds.items() for value in listed}
    folded = text.str.casefold()
    kind = folded.map(lookup, na_action="ignore").astype("string")
    unknown = kind.isna() & folded.notna() & (folded != "")
    if unknown.any():
        row = _first_bad_row(unknown)
        raise InputError(
            source,
            f"event value '{quote(text.iloc[row - 1])}' is not listed in data.{key}.event_values",
            "List it under one of the events, or under ignored if it should not count",
            column=column,
            row=row,
        )
    return kind


def _with_hint(error: InputError, hint: str) -> InputError:
    return InputError(error.source, error.problem, hint, column=error.column, row=error.row)


def _split_events(
    raw: pd.DataFrame, frame: pd.DataFrame, reasons: pd.Series, *, source: str, what: str
) -> CleanEvents:
    kept = reasons.isna()
    if not kept.any():
        counts = reasons.value_counts().to_dict()
        raise InputError(
            source,
            f"no usable {what} rows (set aside: {counts})",
            "Check the column mapping: every row lacks a customer id or is ignored",
        )
    set_aside = raw.loc[~kept].copy()
    set_aside.insert(0, SOURCE_ROW, (raw.index[~kept.to_numpy()] + 1).astype("int64"))
    set_aside[REASON] = reasons.loc[~kept].astype(str).to_numpy()
    set_aside["source_file"] = source
    return CleanEvents(
        events=frame.loc[kept].reset_index(drop=True),
        set_aside=set_aside.reset_index(drop=True),
        rows_in=len(raw),
    )


def clean_loyalty_events(
    raw: pd.DataFrame, *, config: LoyaltyEventsConfig, source: str
) -> CleanEvents:
    """Validate a loyalty-programme events table into points earned and redeemed per event.

    Two layouts are read. Wide: ``points_earned`` and/or ``points_redeemed`` columns (a missing
    cell is 0). Long: one ``points`` column and an ``event_type`` column whose values
    ``config.event_values`` maps to earned or redeemed (rows of ``ignored`` types are set
    aside). Points are taken as magnitudes: ledgers often store redemptions as negative numbers,
    and the column or event type already says which way the points moved.

    Returns
    -------
    CleanEvents
        ``events``: ``customer_id`` (string), ``timestamp`` (datetime64[ns]), ``points_earned``
        and ``points_redeemed`` (float, >= 0). Rows without a customer id or a timestamp, and
        ignored event types, are set aside with their reason.

    Raises
    ------
    InputError
        A mapped column is missing, the file has no rows, a date cannot be read, points are not
        numbers, or an event type is not listed in ``event_values``.
    """
    raw = raw.reset_index(drop=True)
    columns = config.columns
    mapped = _mapped_columns(raw, columns.model_dump(), source=source, key="loyalty_events")
    try:
        timestamps = _parse_timestamps(
            raw[columns.timestamp],
            fmt=config.timestamp_format,
            source=source,
            column=columns.timestamp,
        )
    except InputError as error:
        raise _with_hint(
            error, "Fix the value or set data.loyalty_events.timestamp_format to the file's format"
        ) from None

    def points(field: str) -> pd.Series:
        if field not in mapped:
            return pd.Series(0.0, index=raw.index)
        try:
            parsed = _parse_amounts(raw[mapped[field]], source=source, column=mapped[field])
        except InputError as error:
            raise _with_hint(error, "Points must be plain numbers") from None
        return parsed.abs().fillna(0.0)

    reasons = pd.Series(pd.NA, index=raw.index, dtype="string")
    if columns.event_type is None:
        earned, redeemed = points(POINTS_EARNED), points(POINTS_REDEEMED)
    else:
        values = config.event_values
        assert values is not None  # the config's layout check guarantees it
        kind = _event_kinds(
            raw[columns.event_type],
            {"earned": values.earned, "redeemed": values.redeemed, "ignored": values.ignored},
            source=source,
            column=columns.event_type,
            key="loyalty_events",
        )
        amount = points("points")
        earned = amount.where((kind == "earned").fillna(False), 0.0)
        redeemed = amount.where((kind == "redeemed").fillna(False), 0.0)
        reasons.loc[kind.isna()] = "missing_event_type"
        reasons.loc[(kind == "ignored").fillna(False)] = "ignored_event_type"
    frame = pd.DataFrame(
        {
            CUSTOMER_ID: _customer_ids(
                raw[columns.customer_id], source=source, column=columns.customer_id
            ),
            TIMESTAMP: timestamps,
            POINTS_EARNED: earned.astype("float64"),
            POINTS_REDEEMED: redeemed.astype("float64"),
        }
    )
    # The first reason a row has is its reason: no customer before anything else.
    reasons = reasons.mask(frame[TIMESTAMP].isna(), "missing_timestamp")
    reasons = reasons.mask(frame[CUSTOMER_ID].isna(), "missing_customer_id")
    return _split_events(raw, frame, reasons, source=source, what="loyalty event")


def clean_campaign_events(raw: pd.DataFrame, *, config: CampaignSource, source: str) -> CleanEvents:
    """Validate one campaign interactions file into one row per interaction.

    The event of a row comes from its event column, mapped by ``config.event_values``, or is
    ``config.event`` for every row. A file without a timestamp column (a list of the campaigns
    each customer was sent, say) gives events without a time: the feature stage counts them
    whatever the as-of date.

    Returns
    -------
    CleanEvents
        ``events``: ``customer_id`` (string), ``timestamp`` (datetime64[ns], NaT when unknown),
        ``campaign_id`` and ``channel`` (string, lower case; NA when unknown) and ``event``
        (one of sent, opened, clicked, converted). Rows without a customer id or an event, and
        ignored event values, are set aside with their reason.

    Raises
    ------
    InputError
        A mapped column is missing, the file has no rows, a date cannot be read, or an event
        value is not listed in ``event_values``.
    """
    raw = raw.reset_index(drop=True)
    columns = config.columns
    mapped = _mapped_columns(raw, columns.model_dump(), source=source, key="campaigns")
    timestamps = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    if TIMESTAMP in mapped:
        try:
            timestamps = _parse_timestamps(
                raw[mapped[TIMESTAMP]],
                fmt=config.timestamp_format,
                source=source,
                column=mapped[TIMESTAMP],
            )
        except InputError as error:
            raise _with_hint(
                error, "Fix the value or set timestamp_format on this data.campaigns source"
            ) from None

    def text(field: str, *, lower: bool = False) -> pd.Series:
        if field not in mapped:
            return pd.Series(pd.NA, index=raw.index, dtype="string")
        values = raw[mapped[field]].astype("string").str.strip()
        values = values.mask(values == "")
        return values.str.lower() if lower else values

    reasons = pd.Series(pd.NA, index=raw.index, dtype="string")
    if config.event is not None:
        event = pd.Series(config.event, index=raw.index, dtype="string")
    else:
        values = config.event_values
        assert values is not None  # the config's check guarantees it
        event = _event_kinds(
            raw[mapped[EVENT]],
            {kind: getattr(values, kind) for kind in (*CAMPAIGN_EVENTS, "ignored")},
            source=source,
            column=mapped[EVENT],
            key="campaigns",
        )
        reasons.loc[event.isna()] = "missing_event"
        reasons.loc[(event == "ignored").fillna(False)] = "ignored_event"
    frame = pd.DataFrame(
        {
            CUSTOMER_ID: _customer_ids(
                raw[columns.customer_id], source=source, column=columns.customer_id
            ),
            TIMESTAMP: timestamps,
            # Read like customer ids: one campaign's id may be a number in one file (26.0)
            # and text in another (26), and must match across them.
            CAMPAIGN_ID: _customer_ids(text(CAMPAIGN_ID)),
            CHANNEL: text(CHANNEL, lower=True),
            EVENT: event,
        }
    )
    reasons = reasons.mask(frame[CUSTOMER_ID].isna(), "missing_customer_id")
    return _split_events(raw, frame, reasons, source=source, what="campaign")


def combine_events(parts: list[CleanEvents]) -> CleanEvents:
    """Several sources of one kind of events (campaign files) as one table."""
    return CleanEvents(
        events=pd.concat([part.events for part in parts], ignore_index=True),
        set_aside=pd.concat([part.set_aside for part in parts], ignore_index=True),
        rows_in=sum(part.rows_in for part in parts),
    )
