from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.learned_value import (
    MIN_CALIBRATION_OUTCOMES,
    _Calibrator,
    calibrate_on_holdout,
)


@pytest.fixture(scope="module")
def overconfident():
    """A score that ranks by the true chance but overstates it: the cube root of it."""
    rng = np.random.default_rng(3)
    chance = rng.uniform(0.02, 0.9, 6000)
    bought = (rng.random(6000) < chance).astype(int)
    return chance ** (1 / 3), bought


def test_holdout_calibration_gives_the_share_who_bought_and_keeps_the_order(overconfident):
    score, bought = overconfident
    calibration = calibrate_on_holdout(score, bought, random_state=0)
    raw_brier = np.mean((score - bought) ** 2)
    assert calibration.brier < raw_brier - 0.02
    assert abs(calibration.mean_probability - bought.mean()) < 0.01
    calibrated = calibration.calibrator.predict(score)
    assert abs(calibrated.mean() - bought.mean()) < 0.01
    # A calibration changes how sure a forecast is, not who is ahead of whom.
    assert roc_auc_score(bought, calibrated) == pytest.approx(
        roc_auc_score(bought, score), abs=2e-3
    )


def test_a_holdout_with_too_few_of_either_outcome_calibrates_nothing(overconfident):
    score, bought = overconfident
    few = np.zeros_like(bought)
    few[: MIN_CALIBRATION_OUTCOMES - 1] = 1
    assert calibrate_on_holdout(score, few, random_state=0) is None


def test_isotonic_calibration_interpolates_between_its_blocks(overconfident):
    score, bought = overconfident
    calibrator = _Calibrator("isotonic").fit(score, bought)
    centres, values = calibrator.knots_
    assert (np.diff(centres) > 0).all() and (np.diff(values) > 0).all()
    smooth = calibrator.predict(score)
    steps = calibrator.model_.predict(score)
    # Many more levels than blocks: between the outer centres, the score's order is kept whole.
    assert len(np.unique(smooth)) > 10 * len(values)
    inside = np.sort(score[(score > centres[0]) & (score < centres[-1])])
    assert (np.diff(calibrator.predict(inside)) > 0).all()
    # On the whole, it still gives the share who bought, as the steps do.
    assert smooth.mean() == pytest.approx(steps.mean(), abs=0.01)
    assert steps.mean() == pytest.approx(bought.mean(), abs=1e-9)


def test_a_calibrator_saved_before_the_block_centres_scores_as_it_did(overconfident):
    score, bought = overconfident
    calibrator = _Calibrator("isotonic").fit(score, bought)
    del calibrator.knots_  # what an older bundle holds
    np.testing.assert_array_equal(calibrator.predict(score), calibrator.model_.predict(score))


def test_a_large_holdout_is_calibrated_on_a_seeded_sample(overconfident, monkeypatch):
    score, bought = overconfident
    whole = calibrate_on_holdout(score, bought, random_state=0)
    monkeypatch.setattr("pipeline.learned_value.CALIBRATION_SAMPLE_SIZE", 3000)
    sampled = calibrate_on_holdout(score, bought, random_state=0)
    again = calibrate_on_holdout(score, bought, random_state=0)
    assert sampled.brier == again.brier  # seeded: the same sample every run
    assert sampled.brier != whole.brier  # scored on the sample, not on every customer
    # Half the customers give the same map, to within the sample's noise.
    grid = np.linspace(0.3, 0.95, 50)
    gap = np.abs(sampled.calibrator.predict(grid) - whole.calibrator.predict(grid))
    assert gap.max() < 0.06 and sampled.brier == pytest.approx(whole.brier, abs=0.01)
