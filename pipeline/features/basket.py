"""Basket and product features, from the transaction lines' optional columns.

Each feature exists only when the columns it needs are mapped in the config: ``quantity`` ->
``items_per_order``; ``product`` -> ``distinct_products`` and ``top_product``; ``discount`` ->
``discount_share``; cancellation or return lines (``invoice`` prefix, negative quantity, a
``returns`` flag) -> ``return_rate``.
"""

from __future__ import annotations

import datetime as dt

import ibis

from pipeline.features.rfm import MONEY
from pipeline.schema import AMOUNT, CUSTOMER_ID, DISCOUNT, INVOICE, PRODUCT, QUANTITY, TIMESTAMP


def _observed(lines: ibis.Table, as_of: dt.date) -> ibis.Table:
    return lines.filter(lines[TIMESTAMP].date() <= ibis.date(as_of))


def basket_sums(lines: ibis.Table, *, as_of: dt.date) -> ibis.Table | None:
    """Per-customer sums over the transaction lines up to ``as_of``; None without basket columns."""
    columns = set(lines.columns)
    observed = _observed(lines, as_of)
    sums: dict[str, ibis.Value] = {}
    if QUANTITY in columns:
        # An order is an invoice where there is one, else a purchase day.
        orders = (
            observed[INVOICE].nunique()
            if INVOICE in columns
            else observed[TIMESTAMP].date().nunique()
        )
        sums["basket_orders"] = orders
        sums["items"] = observed[QUANTITY].sum()
    if PRODUCT in columns:
        sums["distinct_products"] = observed[PRODUCT].nunique()
    if DISCOUNT in columns:
        sums["discount_exact"] = observed[DISCOUNT].cast(MONEY).sum()
        sums["paid_exact"] = observed[AMOUNT].cast(MONEY).sum()
    if not sums:
        return None
    return observed.group_by(CUSTOMER_ID).aggregate(**sums)


def top_products(lines: ibis.Table, *, as_of: dt.date) -> ibis.Table | None:
    """Each customer's product with the highest spend up to ``as_of``; None without products.

    Spend per product is an exact sum; among products with equal spend the first by name is
    taken, so every engine and every run name the same product.
    """
    if PRODUCT not in lines.columns:
        return None
    observed = _observed(lines, as_of)
    observed = observed.filter(observed[PRODUCT].notnull())
    spend = observed.group_by([CUSTOMER_ID, PRODUCT]).aggregate(
        spend=observed[AMOUNT].cast(MONEY).sum()
    )
    order = ibis.window(
        group_by=spend[CUSTOMER_ID], order_by=[ibis.desc(spend.spend), spend[PRODUCT]]
    )
    ranked = spend.mutate(place=ibis.row_number().over(order))
    return ranked.filter(ranked.place == 0).select(ranked[CUSTOMER_ID], top_product=ranked[PRODUCT])


def returned_sums(returns: ibis.Table, *, as_of: dt.date) -> ibis.Table:
    """Per-customer value of the return and cancellation lines up to ``as_of``."""
    observed = _observed(returns, as_of)
    return observed.group_by(CUSTOMER_ID).aggregate(
        returned_exact=observed[AMOUNT].cast(MONEY).sum()
    )


def basket_features(customers: ibis.Table) -> dict[str, ibis.Value]:
    """Basket features from the sums joined to the customer table (only those it holds).

    ``items_per_order`` (units per order), ``distinct_products``, ``discount_share`` (discount
    / (paid + discount)), ``return_rate`` (value returned or cancelled / (value kept + value
    returned), 0 for a customer who returned nothing) and ``top_product`` (see
    :func:`top_products`).
    """
    columns = set(customers.columns)
    features: dict[str, ibis.Value] = {}
    if "items" in columns:
        features["items_per_order"] = customers["items"].cast("float64") / customers.basket_orders
    if "distinct_products" in columns:
        features["distinct_products"] = customers.distinct_products
    if "discount_exact" in columns:
        discount = customers.discount_exact.cast("float64")
        gross = discount + customers.paid_exact.cast("float64")
        features["discount_share"] = ibis.ifelse(gross > 0, discount / gross, 0.0)
    if "returned_exact" in columns:
        returned = customers.returned_exact.cast("float64").coalesce(0.0)
        gross = returned + customers.total_spend_exact.cast("float64")
        features["return_rate"] = ibis.ifelse(gross > 0, returned / gross, 0.0)
    if "top_product" in columns:
        features["top_product"] = customers.top_product
    return features
