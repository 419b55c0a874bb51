"""Customer attributes from the optional customers table: what sub-segments combine with a status."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.schema import CUSTOMER_ID

AGE_BANDS = (0, 18, 25, 35, 45, 55, 65, 200)
AGE_LABELS = ("<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")


def attribute_features(customers: pd.DataFrame, *, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per customer: ``age`` and ``age_band`` from the birth date (or ``age_band`` as the
    table gives it), ``signup_tenure_days`` from the sign-up date, and ``gender``, ``location``,
    ``tier`` and any extra columns as given (only those the table has)."""
    as_of = pd.Timestamp(as_of).normalize()
    result = pd.DataFrame({CUSTOMER_ID: customers[CUSTOMER_ID]})
    if "birth_date" in customers:
        age = np.floor((as_of - customers["birth_date"]).dt.days / 365.25)
        result["age"] = age.where(age >= 0)
        result["age_band"] = pd.cut(
            result["age"], bins=AGE_BANDS, labels=AGE_LABELS, right=False
        ).astype("string")
    elif "age_band" in customers:
        # Bands as the file names them ("45-54"): not re-cut, so rules use the file's labels.
        result["age_band"] = customers["age_band"]
    if "signup_date" in customers:
        result["signup_tenure_days"] = (as_of - customers["signup_date"]).dt.days.astype("float64")
    derived = {"birth_date", "signup_date", "age_band"}
    for column in customers.columns:
        if column != CUSTOMER_ID and column not in derived:
            # gender, location, tier and the extra columns, as given
            result[column] = customers[column]
    return result
