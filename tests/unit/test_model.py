from __future__ import annotations

import pickle

from pipeline.config import Config
from pipeline.model import SegmentationModel


def test_a_bundle_pickled_before_the_drift_reference_existed_loads_without_one():
    bundle = SegmentationModel(
        config=Config(),
        trained_as_of=None,
        prior_gap_days=30.0,
        clusterer=None,
        value_model=None,
        labeler=None,
        feature_reference={"x": "reference"},
    )
    # an old bundle is one whose pickled state has no such attribute
    del bundle.__dict__["feature_reference"]
    old = pickle.loads(pickle.dumps(bundle))
    assert "feature_reference" not in old.__dict__
    assert old.feature_reference is None
    assert old.prior_gap_days == 30.0
