"""Clustering stage: discover groups of customers with similar behaviour, k chosen on evidence.

A scikit-learn Pipeline (impute -> log1p or rank for right-skewed features -> standard scale ->
k-means or a Gaussian mixture), so that the exact transform fitted at training is the one
applied at scoring. k is chosen over a configured range on a seeded sample: silhouette,
Calinski-Harabasz, BIC (mixtures) and stability (adjusted Rand index between fits on bootstrap
samples); the final model is fitted on everyone. Cluster ids carry no meaning and permute
between fits; :mod:`pipeline.labeling` names them by their profiles.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    pairwise_distances,
    silhouette_score,
)
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, QuantileTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from pipeline.config import ClusteringConfig
from pipeline.sampling import seeded_rows


def make_transform(config: ClusteringConfig, *, random_state: int) -> Pipeline:
    """Impute, de-skew and scale the configured features (unfitted)."""
    skewed = [name for name in config.features if name in config.skewed_features]
    linear = [name for name in config.features if name not in config.skewed_features]
    # Median imputation: a feature undefined for a customer (the gap CV of a two-purchase
    # customer) should sit in the middle of the population, not pull it to an edge. A feature
    # undefined for everyone (no customer with three purchases) is kept as a constant, so the
    # fitted columns are the configured ones whatever the data.
    if config.skew_transform == "log":
        deskew = FunctionTransformer(np.log1p, feature_names_out="one-to-one")
    else:
        deskew = QuantileTransformer(n_quantiles=1000, subsample=100_000, random_state=random_state)
    transformers = (
        [
            (
                "skewed",
                make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), deskew),
                skewed,
            )
        ]
        if skewed
        else []
    )
    if linear:
        transformers.append(
            ("linear", SimpleImputer(strategy="median", keep_empty_features=True), linear)
        )
    return Pipeline(
        [
            ("transform", ColumnTransformer(transformers, remainder="drop")),
            ("scale", StandardScaler()),
        ]
    )


def _estimator(config: ClusteringConfig, k: int, random_state: int):
    if config.algorithm == "gmm":
        return GaussianMixture(
            n_components=k, covariance_type="full", n_init=config.n_init, random_state=random_state
        )
    return KMeans(n_clusters=k, n_init=config.n_init, random_state=random_state)


def make_clusterer(config: ClusteringConfig, *, n_clusters: int, random_state: int) -> Pipeline:
    """An unfitted pipeline: the transform, then the clustering algorithm."""
    transform = make_transform(config, random_state=random_state)
    return Pipeline([*transform.steps, ("cluster", _estimator(config, n_clusters, random_state))])


@dataclass(frozen=True)
class KChoice:
    """The evidence table over k and the k it supports, with the reason."""

    k: int
    reason: str
    evidence: pd.DataFrame


def _fit(config: ClusteringConfig, k: int, random_state: int, data: np.ndarray):
    """One fit whose OpenMP loop runs on one thread, so that its result is the same bits
    whatever the thread cap: with several threads k-means sums its centres in an order that
    depends on the thread count (measured: centres 3.6e-15 apart between 1 and 2 threads)."""
    with threadpool_limits(limits=1, user_api="openmp"):
        return _estimator(config, k, random_state).fit(data)


def _in_parallel(function: Callable[[Any], Any], items: list[Any], threads: int) -> list[Any]:
    """``[function(item) for item in items]``, ``threads`` at a time, in the items' order.

    k-means releases the GIL in its loop, so threads run fits side by side; each fit is
    single-threaded and seeded, so the results do not depend on ``threads``.
    """
    if threads <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(function, items))


def selection_sample(features: pd.DataFrame, size: int, *, random_state: int) -> pd.DataFrame:
    """A seeded sample of at most ``size`` customers, in their original order."""
    rows = seeded_rows(len(features), size, random_state=random_state)
    return features if rows is None else features.iloc[rows]


def choose_k(
    features: pd.DataFrame, config: ClusteringConfig, *, random_state: int, threads: int = 1
) -> KChoice:
    """Score every k in the range on a seeded sample and choose one.

    Among the k whose bootstrap fits agree (stability >= ``min_stability``), k-means takes the
    best silhouette and a mixture the lowest BIC; if none is stable enough, the most stable k.

    The sample has a fixed size (``selection_sample_size``, default 20,000), so the time spent
    here does not grow with the customer base. That size is enough: at the largest k (18) a
    cluster of 1% of the customers still has 200 members in it, whose centre is then known to
    about 1/sqrt(200) = 0.07 standard deviations of the scaled features, far below the distance
    between distinct behaviours; the evidence is compared between k on the same sample, so
    sampling noise shifts every k alike.

    Each k is fitted once on the sample, and that fit serves silhouette, Calinski-Harabasz, BIC
    and one side of every stability pair (ARI between it and a fit on a bootstrap sample,
    both predicted on the sample): 1 + ``stability_bootstraps`` fits per k. The fits of every k
    run ``threads`` at a time.
    """
    sample = selection_sample(features, config.selection_sample_size, random_state=random_state)
    # The bootstrap rows come from their own seeded stream, drawn before any fit runs.
    rng = np.random.default_rng([random_state, 1])
    embedded = make_transform(config, random_state=random_state).fit_transform(sample)
    low, high = config.k_range
    ks = list(range(low, min(high, len(sample) - 1) + 1))
    # Bootstrap rows drawn up front in a fixed order: the same whatever runs in parallel.
    draws = {
        (k, b): rng.choice(len(embedded), size=len(embedded), replace=True)
        for k in ks
        for b in range(config.stability_bootstraps)
    }
    tasks = [(k, None) for k in ks] + list(draws)

    def fit_task(task: tuple[int, int | None]):
        k, b = task
        if b is None:
            return _fit(config, k, random_state, embedded)
        return _fit(config, k, random_state + 1 + b, embedded[draws[task]])

    fitted = dict(zip(tasks, _in_parallel(fit_task, tasks, threads), strict=True))
    # Silhouette is O(n^2): scored on a seeded subsample whose distances are computed once and
    # shared by every k (the subsample is the same rows for each k).
    scored = np.sort(
        np.random.default_rng([random_state, 2]).permutation(len(embedded))[
            : min(config.silhouette_sample_size, len(embedded))
        ]
    )
    distances = pairwise_distances(embedded[scored])
    rows = []
    for k in ks:
        model = fitted[(k, None)]
        labels = model.predict(embedded)
        row = {
            "k": k,
            "smallest_cluster_share": float(np.bincount(labels, minlength=k).min() / len(labels)),
        }
        if len(np.unique(labels)) > 1:
            row["silhouette"] = (
                float(silhouette_score(distances, labels[scored], metric="precomputed"))
                if 1 < len(np.unique(labels[scored])) < len(scored)
                else np.nan
            )
            row["calinski_harabasz"] = float(calinski_harabasz_score(embedded, labels))
        if config.algorithm == "gmm":
            row["bic"] = float(model.bic(embedded))
        agreements = [
            adjusted_rand_score(labels, fitted[(k, b)].predict(embedded))
            for b in range(config.stability_bootstraps)
        ]
        row["stability"] = float(np.mean(agreements))
        rows.append(row)
    evidence = pd.DataFrame(rows)
    stable = evidence[evidence["stability"] >= config.min_stability]
    if config.algorithm == "gmm":
        criterion, best_of = "bic", "lowest"
    else:
        criterion, best_of = "silhouette", "highest"
    if stable.empty:
        chosen = evidence.loc[evidence["stability"].idxmax()]
        reason = (
            f"no k in {low}-{high} reached stability {config.min_stability:.2f}; "
            f"k={int(chosen['k'])} is the most stable ({chosen['stability']:.2f})"
        )
    else:
        pick = stable[criterion].idxmin() if best_of == "lowest" else stable[criterion].idxmax()
        chosen = evidence.loc[pick]
        reason = (
            f"k={int(chosen['k'])}: {best_of} {criterion} ({chosen[criterion]:.3f}) among the "
            f"{len(stable)} of {len(evidence)} k in {low}-{high} whose bootstrap fits agree "
            f"(ARI >= {config.min_stability:.2f}; this k {chosen['stability']:.2f})"
        )
    evidence["chosen"] = evidence["k"] == int(chosen["k"])
    return KChoice(int(chosen["k"]), reason, evidence)


def fit_clusters(
    features: pd.DataFrame, config: ClusteringConfig, *, random_state: int, threads: int = 1
) -> tuple[Pipeline, np.ndarray, KChoice | None]:
    """Choose k (unless fixed), fit on every customer, return the clusterer and the clusters.

    Only this final fit sees every customer. k-means' ``n_init`` starts are fitted as separate
    single-start fits, each from its own seed drawn from ``random_state``, ``threads`` at a time,
    and the lowest inertia wins (the first on a tie); each runs its OpenMP loop on one thread, so
    the clusters are the same bits whatever ``threads``.
    """
    choice = None
    if config.n_clusters is None and len(features) > config.k_range[0] + 1:
        choice = choose_k(features, config, random_state=random_state, threads=threads)
        n_clusters = choice.k
    else:
        n_clusters = config.n_clusters or config.k_range[0]
    n_clusters = min(n_clusters, len(features))
    clusterer = make_clusterer(config, n_clusters=n_clusters, random_state=random_state)
    if config.algorithm == "kmeans" and config.n_init > 1:
        embedded = clusterer[:-1].fit_transform(features)  # the slice shares the fitted steps
        seeds = np.random.SeedSequence(random_state).generate_state(config.n_init)
        single = config.model_copy(update={"n_init": 1})
        starts = _in_parallel(
            lambda seed: _fit(single, n_clusters, int(seed), embedded), list(seeds), threads
        )
        best = min(range(len(starts)), key=lambda i: (starts[i].inertia_, i))
        clusterer.steps[-1] = ("cluster", starts[best])
    else:
        with threadpool_limits(limits=1, user_api="openmp"):
            clusterer.fit(features)
    labels = clusterer.predict(features)
    return clusterer, labels.astype("int64"), choice


def cluster_metrics(
    clusterer: Pipeline,
    features: pd.DataFrame,
    labels: np.ndarray,
    *,
    sample_size: int,
    random_state: int,
) -> dict[str, float]:
    """Quality of the partition in the space the clusters were found in.

    Silhouette is O(n^2), so it is computed on a seeded sample of at most ``sample_size``.
    """
    embedded = clusterer[:-1].transform(features)
    n_found = len(np.unique(labels))
    metrics: dict[str, float] = {
        "n_clusters": float(n_found),
        "smallest_cluster_share": float(np.bincount(labels).min() / len(labels)),
    }
    final = clusterer[-1]
    if hasattr(final, "inertia_"):
        metrics["inertia"] = float(final.inertia_)
    if hasattr(final, "bic"):
        metrics["bic"] = float(final.bic(embedded))
    if 1 < n_found < len(labels):
        metrics["silhouette"] = float(
            silhouette_score(
                embedded,
                labels,
                sample_size=min(sample_size, len(labels)),
                random_state=random_state,
            )
        )
        metrics["calinski_harabasz"] = float(calinski_harabasz_score(embedded, labels))
    return metrics
