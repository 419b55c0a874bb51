from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from pipeline.clustering import fit_clusters
from pipeline.config import Config
from pipeline.train import label_clusters, seed_stability


def _customers(n: int = 900, seed: int = 0) -> pd.DataFrame:
    """Three groups of buyers at rates 1, 10 and 100 a year, with gaps to match."""
    rng = np.random.default_rng(seed)
    rate = np.repeat([1.0, 10.0, 100.0], n // 3) * rng.lognormal(0, 0.3, n)
    return pd.DataFrame({"rate": rate, "gap": 365 / rate * rng.lognormal(0, 0.3, n)})


def _config(sample_size: int, n_clusters: int = 4) -> Config:
    return Config.model_validate(
        {
            "clustering": {
                "n_clusters": n_clusters,
                "n_init": 2,
                "features": ["rate", "gap"],
                "skewed_features": ["rate", "gap"],
                "selection_sample_size": sample_size,
            },
            "labeling": {
                "cluster_rules": [
                    {"status": "loyal", "when": {"rate": {"ge": 30}}},
                    {"status": "active", "when": {"rate": {"ge": 3}}},
                ],
                "customer_rules": [],
            },
        }
    )


def test_seed_stability_on_a_base_within_the_sample_is_the_full_refit_figure():
    signals = _customers()
    config = _config(sample_size=5000)  # larger than the base: everyone is refitted
    _, clusters, _ = fit_clusters(signals, config.clustering, random_state=config.seed)
    _, statuses = label_clusters(signals, clusters, config.labeling)
    # What training computed before the sample: refit everyone with the next seed, rename.
    _, other, _ = fit_clusters(signals, config.clustering, random_state=config.seed + 1)
    _, other_statuses = label_clusters(signals, other, config.labeling)
    expected = adjusted_rand_score(statuses["status"], other_statuses["status"])
    assert (
        seed_stability(
            signals, statuses["status"], config.clustering, config.labeling, seed=config.seed
        )
        == expected
    )


def test_seed_stability_refits_only_the_sample_and_still_sees_stable_names(monkeypatch):
    import pipeline.train as train

    signals = _customers(n=3000)
    config = _config(sample_size=600, n_clusters=3)
    _, clusters, _ = fit_clusters(signals, config.clustering, random_state=config.seed)
    _, statuses = label_clusters(signals, clusters, config.labeling)
    refitted: list[int] = []
    real = train.fit_clusters

    def recording(features, *args, **kwargs):
        refitted.append(len(features))
        return real(features, *args, **kwargs)

    monkeypatch.setattr(train, "fit_clusters", recording)
    ari = seed_stability(
        signals, statuses["status"], config.clustering, config.labeling, seed=config.seed
    )
    assert refitted == [600]
    # Three planted groups in three clusters, named by rate alone: a refit with another seed on
    # a fifth of them finds and names the same groups.
    assert ari > 0.95
