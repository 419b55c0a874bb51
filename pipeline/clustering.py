"""Clustering stage: discover groups of customers with similar behaviour, k chosen on evidence.

A scikit-learn Pipeline (impute -> log1p or rank for right-skewed features -> standard scale ->
k-means or a Gaussian mixture), so that the exact transform fitted at training is the one
applied at scoring. k is chosen over a configured range on a seeded sample: silhouette,
Calinski-Harabasz, BIC (mixtures) and stability (adjusted Rand index between fits on bootstrap
samples); the final model is fitted on everyone. Cluster ids carry no meaning and permute
between fits; :mod:`pipeline.labeling` names them by their profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import adjusted_rand_score, calinski_harabasz_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, QuantileTransformer, StandardScaler

from pipeline.config import ClusteringConfig


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


def choose_k(features: pd.DataFrame, config: ClusteringConfig, *, random_state: int) -> KChoice:
    """Score every k in the range on a seeded sample and choose one.

    Among the k whose bootstrap fits agree (stability >= ``min_stability``), k-means takes the
    best silhouette and a mixture the lowest BIC; if none is stable enough, the most stable k.
    """
    rng = np.random.default_rng(random_state)
    size = min(config.selection_sample_size, len(features))
    sample = features.iloc[np.sort(rng.choice(len(features), size=size, replace=False))]
    embedded = make_transform(config, random_state=random_state).fit_transform(sample)
    low, high = config.k_range
    rows = []
    for k in range(low, min(high, len(sample) - 1) + 1):
        model = _estimator(config, k, random_state).fit(embedded)
        labels = model.predict(embedded)
        row = {
            "k": k,
            "smallest_cluster_share": float(np.bincount(labels, minlength=k).min() / len(labels)),
        }
        if len(np.unique(labels)) > 1:
            row["silhouette"] = float(
                silhouette_score(
                    embedded,
                    labels,
                    sample_size=min(config.silhouette_sample_size, len(labels)),
                    random_state=random_state,
                )
            )
            row["calinski_harabasz"] = float(calinski_harabasz_score(embedded, labels))
        if config.algorithm == "gmm":
            row["bic"] = float(model.bic(embedded))
        agreements = []
        for b in range(config.stability_bootstraps):
            fits = []
            for _ in range(2):
                rows_drawn = rng.choice(len(embedded), size=len(embedded), replace=True)
                fits.append(_estimator(config, k, random_state + 1 + b).fit(embedded[rows_drawn]))
            agreements.append(
                adjusted_rand_score(fits[0].predict(embedded), fits[1].predict(embedded))
            )
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
    features: pd.DataFrame, config: ClusteringConfig, *, random_state: int
) -> tuple[Pipeline, np.ndarray, KChoice | None]:
    """Choose k (unless fixed), fit on every customer, return the clusterer and the clusters."""
    choice = None
    if config.n_clusters is None and len(features) > config.k_range[0] + 1:
        choice = choose_k(features, config, random_state=random_state)
        n_clusters = choice.k
    else:
        n_clusters = config.n_clusters or config.k_range[0]
    n_clusters = min(n_clusters, len(features))
    clusterer = make_clusterer(config, n_clusters=n_clusters, random_state=random_state)
    labels = clusterer.fit(features).predict(features)
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
