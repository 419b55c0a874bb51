from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from pipeline.clustering import cluster_metrics, fit_clusters
from pipeline.config import ClusteringConfig

CONFIG = ClusteringConfig(
    n_clusters=3, n_init=3, features=("rate", "gap", "change"), log_features=("rate", "gap")
)


def three_blobs(seed: int = 0, per_blob: int = 60) -> tuple[pd.DataFrame, np.ndarray]:
    """Three well separated groups on a log scale (rates of 1, 10 and 100), with a NaN."""
    rng = np.random.default_rng(seed)
    centres = [(1, 300, -0.5), (10, 30, 0.0), (100, 3, 0.5)]
    frames, truth = [], []
    for label, (rate, gap, change) in enumerate(centres):
        frames.append(
            pd.DataFrame(
                {
                    "rate": rate * rng.lognormal(0, 0.1, per_blob),
                    "gap": gap * rng.lognormal(0, 0.1, per_blob),
                    "change": change + rng.normal(0, 0.05, per_blob),
                }
            )
        )
        truth += [label] * per_blob
    features = pd.concat(frames, ignore_index=True)
    features.loc[0, "change"] = np.nan
    return features, np.array(truth)


def test_planted_groups_are_recovered_on_the_log_scale():
    features, truth = three_blobs()
    _, labels = fit_clusters(features, CONFIG, random_state=0)
    assert adjusted_rand_score(truth, labels) == 1.0


def test_the_same_seed_gives_the_same_clusters_and_new_rows_are_assigned():
    features, _ = three_blobs()
    first, labels_a = fit_clusters(features, CONFIG, random_state=5)
    _, labels_b = fit_clusters(features, CONFIG, random_state=5)
    np.testing.assert_array_equal(labels_a, labels_b)
    np.testing.assert_array_equal(first.predict(features), labels_a)


def test_only_configured_features_are_used():
    features, truth = three_blobs()
    noisy = features.assign(noise=np.random.default_rng(1).normal(0, 1000, len(features)))
    _, labels = fit_clusters(noisy, CONFIG, random_state=0)
    assert adjusted_rand_score(truth, labels) == 1.0


def test_fewer_customers_than_clusters_still_fits():
    features, _ = three_blobs(per_blob=1)
    _, labels = fit_clusters(features, CONFIG.model_copy(update={"n_clusters": 10}), random_state=0)
    assert len(set(labels)) == 3


def test_metrics_report_separation_on_a_sample():
    features, _ = three_blobs()
    clusterer, labels = fit_clusters(features, CONFIG, random_state=0)
    metrics = cluster_metrics(clusterer, features, labels, sample_size=100, random_state=0)
    assert metrics["n_clusters"] == 3
    assert metrics["silhouette"] > 0.7
    assert metrics["smallest_cluster_share"] == 1 / 3
    assert metrics["calinski_harabasz"] > 100
