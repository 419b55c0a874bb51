from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from pipeline.clustering import choose_k, cluster_metrics, fit_clusters
from pipeline.config import ClusteringConfig

CONFIG = ClusteringConfig(
    n_clusters=3, n_init=3, features=("rate", "gap", "change"), skewed_features=("rate", "gap")
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
    _, labels, _ = fit_clusters(features, CONFIG, random_state=0)
    assert adjusted_rand_score(truth, labels) == 1.0


def test_the_same_seed_gives_the_same_clusters_and_new_rows_are_assigned():
    features, _ = three_blobs()
    first, labels_a, _ = fit_clusters(features, CONFIG, random_state=5)
    _, labels_b, _ = fit_clusters(features, CONFIG, random_state=5)
    np.testing.assert_array_equal(labels_a, labels_b)
    np.testing.assert_array_equal(first.predict(features), labels_a)


def test_only_configured_features_are_used():
    features, truth = three_blobs()
    noisy = features.assign(noise=np.random.default_rng(1).normal(0, 1000, len(features)))
    _, labels, _ = fit_clusters(noisy, CONFIG, random_state=0)
    assert adjusted_rand_score(truth, labels) == 1.0


def test_fewer_customers_than_clusters_still_fits():
    features, _ = three_blobs(per_blob=1)
    _, labels, _ = fit_clusters(
        features, CONFIG.model_copy(update={"n_clusters": 10}), random_state=0
    )
    assert len(set(labels)) == 3


def test_metrics_report_separation_on_a_sample():
    features, _ = three_blobs()
    clusterer, labels, _ = fit_clusters(features, CONFIG, random_state=0)
    metrics = cluster_metrics(clusterer, features, labels, sample_size=100, random_state=0)
    assert metrics["n_clusters"] == 3
    assert metrics["silhouette"] > 0.7
    assert metrics["smallest_cluster_share"] == 1 / 3
    assert metrics["calinski_harabasz"] > 100


def test_k_is_chosen_on_evidence_and_the_reason_says_why():
    features, truth = three_blobs(per_blob=80)
    config = CONFIG.model_copy(
        update={"n_clusters": None, "k_range": (2, 6), "selection_sample_size": 240}
    )
    choice = choose_k(features, config, random_state=0)
    assert choice.k == 3
    assert list(choice.evidence["k"]) == [2, 3, 4, 5, 6]
    assert {"silhouette", "calinski_harabasz", "stability", "chosen"} <= set(
        choice.evidence.columns
    )
    assert choice.evidence.loc[choice.evidence["chosen"], "k"].tolist() == [3]
    assert choice.reason.startswith("k=3: highest silhouette")
    clusterer, labels, used = fit_clusters(features, config, random_state=0)
    assert used.k == 3 and adjusted_rand_score(truth, labels) == 1.0


def test_a_gaussian_mixture_chooses_k_by_bic():
    features, truth = three_blobs(per_blob=80)
    config = CONFIG.model_copy(
        update={
            "algorithm": "gmm",
            "n_clusters": None,
            "k_range": (2, 5),
            "selection_sample_size": 240,
        }
    )
    clusterer, labels, choice = fit_clusters(features, config, random_state=0)
    assert "bic" in choice.evidence.columns and choice.reason.startswith("k=3: lowest bic")
    assert adjusted_rand_score(truth, labels) == 1.0
    assert "bic" in cluster_metrics(clusterer, features, labels, sample_size=100, random_state=0)


def test_the_rank_transform_recovers_the_groups_despite_an_extreme_outlier():
    features, truth = three_blobs()
    features.loc[1, "rate"] = 1e12  # a data error a log does not tame
    config = CONFIG.model_copy(update={"skew_transform": "rank"})
    _, labels, _ = fit_clusters(features, config, random_state=0)
    assert adjusted_rand_score(truth, labels) > 0.95


def test_an_unstable_range_falls_back_to_the_most_stable_k():
    rng = np.random.default_rng(0)
    noise = pd.DataFrame(rng.normal(size=(300, 3)), columns=["rate", "gap", "change"]).abs()
    config = CONFIG.model_copy(
        update={
            "n_clusters": None,
            "k_range": (4, 6),
            "selection_sample_size": 300,
            "min_stability": 0.999,
        }
    )
    choice = choose_k(noise, config, random_state=0)
    assert "no k in 4-6 reached stability" in choice.reason
    assert choice.k == int(choice.evidence.loc[choice.evidence["stability"].idxmax(), "k"])
