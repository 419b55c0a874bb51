from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

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


def _search_config(**update) -> ClusteringConfig:
    return CONFIG.model_copy(
        update={"n_clusters": None, "k_range": (2, 5), "selection_sample_size": 500, **update}
    )


def test_clusters_and_k_evidence_are_the_same_bits_whatever_the_thread_count():
    features, _ = three_blobs(per_blob=400)
    config = _search_config()
    one = fit_clusters(features, config, random_state=3, threads=1)
    # Two OpenMP threads as well, whatever OMP_NUM_THREADS the tests run with.
    with threadpool_limits(limits=2, user_api="openmp"):
        two = fit_clusters(features, config, random_state=3, threads=2)
    np.testing.assert_array_equal(one[1], two[1])
    # Exact equality, not closeness: a multi-threaded k-means sums in another order.
    np.testing.assert_array_equal(
        one[0][-1].cluster_centers_, two[0][-1].cluster_centers_, strict=True
    )
    pd.testing.assert_frame_equal(one[2].evidence, two[2].evidence, check_exact=True)


def test_the_k_search_fits_a_fixed_size_sample_once_per_k_plus_once_per_bootstrap(monkeypatch):
    import pipeline.clustering as clustering

    fitted_rows: list[tuple[int, int]] = []
    real_fit = clustering._fit

    def counting_fit(config, k, random_state, data):
        fitted_rows.append((k, len(data)))
        return real_fit(config, k, random_state, data)

    monkeypatch.setattr(clustering, "_fit", counting_fit)
    features, _ = three_blobs(per_blob=400)  # 1,200 customers, more than the sample
    config = _search_config(stability_bootstraps=2)
    choice = choose_k(features, config, random_state=0)
    # One fit per k serves silhouette, Calinski-Harabasz and one side of every stability pair.
    assert sorted(fitted_rows) == sorted((k, 500) for k in range(2, 6) for _ in range(3))
    assert choice.k == 3
