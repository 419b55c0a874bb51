"""Learned value models: features at a cut-off predict what each customer does in the window after it.

BTYD models see only frequency, recency and tenure. These see every numeric feature (recency
windows, purchases in recent windows, regularity of the gaps, the same season a year earlier)
and the BTYD outputs themselves, so they can correct the BTYD models' systematic errors. They are
candidates in the holdout comparison, chosen only when they forecast better.

- :class:`LearnedValueModel` predicts ``p_purchase`` (a classifier, calibrated), purchases and
  spend (Poisson boosters: counts and amounts are non-negative, often zero, and skewed).
- :class:`LearnedSpendModel` is the spend booster alone, kept so that bundles trained before
  the learned model predicted purchases and probabilities still load and score.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from pipeline.features import FEATURE_COLUMNS
from pipeline.sampling import seeded_rows

# What LearnedSpendModel read (frozen: its saved boosters know exactly these columns).
INPUT_COLUMNS = (
    *(c for c in FEATURE_COLUMNS if c not in ("purchases_year_ago", "spend_year_ago")),
    "p_alive",
    "expected_purchases",
    "expected_spend",
)
# The BTYD outputs a learned value model reads, under names that cannot clash with its own.
BTYD_INPUTS = ("btyd_p_alive", "btyd_p_purchase", "btyd_expected_purchases", "btyd_expected_spend")
# Folds of the out-of-fold scores the calibrator is fitted on: three (scikit-learn's
# CalibratedClassifierCV default was 3 for years) gives every customer a score from a model that
# saw two thirds of the data, at three fits' cost.
CALIBRATION_FOLDS = 3
CALIBRATIONS = ("isotonic", "platt")


def _booster_settings(random_state: int | None) -> dict:
    # Shallow trees, a moderate rate and a leaf floor: a customer base has a few strong signals
    # (recency, frequency, the last window) and much noise, and a leaf of fewer than 50
    # customers fits the noise. No early stopping: its random validation split is not seeded
    # by the data, and the same data + seed must give the same model.
    # 75 trees at rate 0.1: the same budget of steps (trees x rate = 7.5) as 150 at 0.05, at half
    # the trees to fit and to run. Measured 2026-12-04 against 150 x 0.05: the learned candidate's
    # holdout on the embedded sample AUC 0.8777 vs 0.8770, Brier 0.1225 vs 0.1223, spend Gini
    # 0.9659 vs 0.9657; on real holdouts AUC 0.7541 vs 0.7532 (CDNOW), 0.8224 vs 0.8204
    # (Complete Journey), 0.7352 vs 0.7350 (Online Retail; README "Speed, measured"); the second
    # planted world's macro-F1 over three draws 0.802 vs 0.794 (each +-0.03); the value stage at
    # 1M customers 62.2 s vs 80.8 s.
    return {
        "max_iter": 75,
        "learning_rate": 0.1,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 50,
        "early_stopping": False,
        "random_state": random_state,
    }


# Below this many customers a booster runs on one thread: its OpenMP loops split each node's
# histogram work by feature, and on a small base the threads spend longer meeting than working
# (1,500 customers: 0.43 s on one thread, 1.3 s on two of a busy 2-core machine). The trees are
# the same either way (each feature's histogram is summed by one thread).
PARALLEL_BOOSTING_ROWS = 20_000


def _booster_threads(rows: int) -> contextlib.AbstractContextManager:
    if rows >= PARALLEL_BOOSTING_ROWS:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="openmp")


def input_columns(customers: pd.DataFrame) -> list[str]:
    """The numeric columns a learned value model reads, in a fixed order."""
    names = [
        c
        for c in customers.columns
        if c in FEATURE_COLUMNS
        or c in BTYD_INPUTS
        or (c.startswith(("purchases_last_", "spend_last_")) and c.endswith("d"))
    ]
    return [c for c in names if pd.api.types.is_numeric_dtype(customers[c])]


class _Calibrator:
    """Maps a classifier's score to a probability: isotonic or Platt (logistic on the logit)."""

    def __init__(self, method: str) -> None:
        self.method = method

    @staticmethod
    def _logit(score: np.ndarray) -> np.ndarray:
        clipped = np.clip(score, 1e-6, 1 - 1e-6)
        return np.log(clipped / (1 - clipped)).reshape(-1, 1)

    def fit(self, score: np.ndarray, bought: np.ndarray) -> _Calibrator:
        if self.method == "isotonic":
            self.model_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self.model_.fit(score, bought)
            self.knots_ = _block_centres(score, self.model_.predict(score))
        else:
            self.model_ = LogisticRegression(C=1e6).fit(self._logit(score), bought)
        return self

    def predict(self, score: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            knots = getattr(self, "knots_", None)
            if knots is None:  # calibrators saved before the block centres: as they were
                return np.asarray(self.model_.predict(score), dtype="float64")
            return np.interp(np.asarray(score, dtype="float64"), *knots)
        return self.model_.predict_proba(self._logit(score))[:, 1]


def _block_centres(score: np.ndarray, fitted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic regression's blocks as knots: (mean score, value) of each block.

    Isotonic regression is a step function: every customer in a block gets the same
    probability, which throws away the order the score knew inside the block (on CDNOW the
    steps cost 0.01 of ROC AUC). Interpolating between the blocks' centres keeps the block
    averages and the score's order: a calibration changes how sure a forecast is, not who is
    ahead of whom.
    """
    order = np.argsort(score, kind="stable")
    x, y = np.asarray(score, dtype="float64")[order], np.asarray(fitted, dtype="float64")[order]
    starts = np.flatnonzero(np.r_[True, np.diff(y) != 0])
    centres = np.add.reduceat(x, starts) / np.diff(np.r_[starts, len(x)])
    return centres, y[starts]


def _cross_fitted(
    score: np.ndarray, bought: np.ndarray, method: str, *, random_state: int | None
) -> np.ndarray:
    """Each customer's probability from ``method`` fitted on the folds that do not hold them."""
    probability = np.zeros(len(score))
    folds = StratifiedKFold(n_splits=CALIBRATION_FOLDS, shuffle=True, random_state=random_state)
    for train, test in folds.split(score.reshape(-1, 1), bought):
        probability[test] = (
            _Calibrator(method).fit(score[train], bought[train]).predict(score[test])
        )
    return np.clip(probability, 0.0, 1.0)


def choose_calibration(
    score: np.ndarray, bought: np.ndarray, *, random_state: int | None
) -> tuple[str, dict[str, float]]:
    """Isotonic or Platt, whichever gives the lower cross-validated Brier score on these scores.

    Isotonic is free-form and needs many customers per level; Platt is two parameters and
    wins on small bases. Letting the holdout decide is the standard practice (scikit-learn's
    calibration guide), not a preference written here.
    """
    briers = {
        method: float(
            np.mean((_cross_fitted(score, bought, method, random_state=random_state) - bought) ** 2)
        )
        for method in CALIBRATIONS
    }
    return min(briers, key=briers.__getitem__), briers


# Below this many customers of either outcome a holdout cannot say how a score errs: each
# calibration fold would hold fewer than ten of them (three folds), too few for a Platt slope.
MIN_CALIBRATION_OUTCOMES = 30
# A calibration is a one-dimensional monotone map: from 100,000 customers each of isotonic's
# blocks holds hundreds and a Brier score is known to about 0.001, finer than candidates differ.
# A larger holdout is calibrated on a seeded sample of this size (on 1M customers the six
# cross-fitted fits per candidate took 8.5 s; the map they find is the same).
CALIBRATION_SAMPLE_SIZE = 100_000


@dataclass(frozen=True)
class HoldoutCalibration:
    """A score's calibrator and its cross-fitted Brier score and mean probability on a holdout."""

    calibrator: _Calibrator
    brier: float
    mean_probability: float


def calibrate_on_holdout(
    score: np.ndarray, bought: np.ndarray, *, random_state: int | None
) -> HoldoutCalibration | None:
    """Calibrate ``score`` on a holdout: the method, the calibrator and its cross-fitted Brier score.

    The method (isotonic or Platt) is the one with the lower cross-validated Brier score; the
    calibrator is fitted on the whole holdout (a seeded sample of
    :data:`CALIBRATION_SAMPLE_SIZE` when larger), and the Brier score and mean come from each
    customer's probability by the chosen method fitted on the folds that do not hold them, so a
    candidate is never scored on its own calibration. None when either outcome has fewer than
    :data:`MIN_CALIBRATION_OUTCOMES` customers.
    """
    score = np.nan_to_num(np.asarray(score, dtype="float64"), nan=0.0)
    bought = np.asarray(bought).astype(int)
    rows = seeded_rows(len(score), CALIBRATION_SAMPLE_SIZE, random_state=random_state)
    if rows is not None:
        score, bought = score[rows], bought[rows]
    if min(bought.sum(), len(bought) - bought.sum()) < MIN_CALIBRATION_OUTCOMES:
        return None
    briers, means = {}, {}
    for method in CALIBRATIONS:
        cross_fitted = _cross_fitted(score, bought, method, random_state=random_state)
        briers[method] = float(np.mean((cross_fitted - bought) ** 2))
        means[method] = float(cross_fitted.mean())
    method = min(briers, key=briers.__getitem__)
    return HoldoutCalibration(_Calibrator(method).fit(score, bought), briers[method], means[method])


class LearnedValueModel(BaseEstimator):
    """Calibrated purchase probability, purchases and spend in a window, learned from features.

    Parameters
    ----------
    random_state
        Seeds the boosters and the folds.
    """

    def __init__(self, *, random_state: int | None = None) -> None:
        self.random_state = random_state

    def fit(
        self,
        customers: pd.DataFrame,
        *,
        purchases: np.ndarray,
        spend: np.ndarray,
    ) -> LearnedValueModel:
        """Learn from features at cut-offs and each customer's purchases and spend after them."""
        purchases = np.asarray(purchases, dtype="float64")
        spend = np.asarray(spend, dtype="float64")
        bought = (purchases > 0).astype(int)
        if bought.min() == bought.max():
            raise ValueError("every customer bought (or none did) in the window: nothing to learn")
        if np.any(spend < 0) or spend.sum() <= 0:
            raise ValueError("the target spend must be non-negative and not all zero")
        self.columns_ = input_columns(customers)
        inputs = customers[self.columns_].astype("float64")
        with _booster_threads(len(inputs)):
            return self._fit(inputs, bought, purchases, spend)

    def _fit(
        self, inputs: pd.DataFrame, bought: np.ndarray, purchases: np.ndarray, spend: np.ndarray
    ) -> LearnedValueModel:
        settings = _booster_settings(self.random_state)
        # Out-of-fold scores: the calibrator must learn how the classifier errs on customers
        # it has not seen, as it will be used.
        oof = np.zeros(len(inputs))
        folds = StratifiedKFold(
            n_splits=CALIBRATION_FOLDS, shuffle=True, random_state=self.random_state
        )
        for train, test in folds.split(inputs, bought):
            classifier = HistGradientBoostingClassifier(**settings)
            classifier.fit(inputs.iloc[train], bought[train])
            oof[test] = classifier.predict_proba(inputs.iloc[test])[:, 1]
        self.calibration_, self.calibration_brier_ = choose_calibration(
            oof, bought, random_state=self.random_state
        )
        self.calibrator_ = _Calibrator(self.calibration_).fit(oof, bought)
        self.classifier_ = HistGradientBoostingClassifier(**settings).fit(inputs, bought)
        poisson = {**settings, "loss": "poisson"}
        self.purchases_ = HistGradientBoostingRegressor(**poisson).fit(inputs, purchases)
        self.spend_ = HistGradientBoostingRegressor(**poisson).fit(inputs, spend)
        return self

    def predict(self, customers: pd.DataFrame) -> pd.DataFrame:
        """``p_purchase``, ``expected_purchases`` and ``expected_spend`` in the learned window."""
        check_is_fitted(self, "classifier_")
        missing = [c for c in self.columns_ if c not in customers.columns]
        if missing:
            raise ValueError(f"learned value model needs columns {missing}")
        inputs = customers[self.columns_].astype("float64")
        score = self.classifier_.predict_proba(inputs)[:, 1]

        def clean(values: np.ndarray) -> np.ndarray:
            return np.clip(np.nan_to_num(values, nan=0.0, posinf=0.0), 0.0, None)

        return pd.DataFrame(
            {
                "p_purchase": np.clip(self.calibrator_.predict(score), 0.0, 1.0),
                "expected_purchases": clean(self.purchases_.predict(inputs)),
                "expected_spend": clean(self.spend_.predict(inputs)),
            },
            index=customers.index,
        )


class LearnedSpendModel(BaseEstimator, RegressorMixin):
    """Gradient boosting with a Poisson loss on spend alone (bundles before LearnedValueModel)."""

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
            early_stopping=False,
            random_state=self.random_state,
        ).fit(self._inputs(customers), spend)
        return self

    def predict(self, customers: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "booster_")
        predicted = self.booster_.predict(self._inputs(customers))
        return np.clip(np.nan_to_num(predicted, nan=0.0, posinf=0.0), 0.0, None)
