"""A learned spend model: features at a cut-off predict the spend in the window that follows.

BTYD models see only frequency, recency and tenure; this one sees every feature (rhythm, trend,
basket) and the BTYD outputs themselves, so it can correct their systematic errors. It is one
more candidate in the holdout comparison, chosen only when it forecasts better.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted

from pipeline.features import FEATURE_COLUMNS

# Every feature and the BTYD outputs themselves, so that the booster can correct them.
INPUT_COLUMNS = (*FEATURE_COLUMNS, "p_alive", "expected_purchases", "expected_spend")


class LearnedSpendModel(BaseEstimator, RegressorMixin):
    """Gradient boosting with a Poisson loss: spend is non-negative, often zero, and skewed.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes
        Passed to :class:`~sklearn.ensemble.HistGradientBoostingRegressor`.
    random_state
        Seed of the booster.
    """

    def __init__(
        self,
        *,
        max_iter: int = 200,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 31,
        random_state: int | None = None,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.random_state = random_state

    def _inputs(self, customers: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in INPUT_COLUMNS if c not in customers.columns]
        if missing:
            raise ValueError(f"learned spend model needs columns {missing}")
        return customers[list(INPUT_COLUMNS)].astype("float64")

    def fit(self, customers: pd.DataFrame, spend: np.ndarray) -> LearnedSpendModel:
        spend = np.asarray(spend, dtype="float64")
        if np.any(spend < 0) or spend.sum() <= 0:
            raise ValueError("the target spend must be non-negative and not all zero")
        self.booster_ = HistGradientBoostingRegressor(
            loss="poisson",
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            early_stopping=False,  # deterministic: no random validation split
            random_state=self.random_state,
        ).fit(self._inputs(customers), spend)
        return self

    def predict(self, customers: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "booster_")
        predicted = self.booster_.predict(self._inputs(customers))
        return np.clip(np.nan_to_num(predicted, nan=0.0, posinf=0.0), 0.0, None)
