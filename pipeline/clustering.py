"""Clustering stage: discover groups of customers with similar behaviour.

A scikit-learn Pipeline (impute -> log1p for right-skewed features -> standard scale ->
k-means), so that the exact transform fitted at training is the one applied at scoring.
Cluster ids carry no meaning and permute between fits; :mod:`pipeline.labeling` names them by
their profiles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import calinski_harabasz_score, silhouette_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from pipeline.config import ClusteringConfig


def make_clusterer(config: ClusteringConfig, *, random_state: int) -> Pipeline:
    """An unfitted pipeline over the configured feature columns."""
    logged = [name for name in config.features if name in config.log_features]
    linear = [name for name in config.features if name not in config.log_features]
    # Median imputation: a feature undefined for a customer (the gap CV of a two-purchase
    # customer) should sit in the middle of the population, not pull it to an edge.
    log_part = make_pipeline(
        SimpleImputer(strategy="median"),
        FunctionTransformer(np.log1p, feature_names_out="one-to-one"),
    )
    transformers = [("log", log_part, logged)] if logged else []
    if linear:
        transformers.append(("linear", SimpleImputer(strategy="median"), linear))
    return Pipeline(
        [
            ("transform", ColumnTransformer(transformers, remainder="drop")),
            ("scale", StandardScaler()),
            (
                "cluster",
                KMeans(
                    n_clusters=config.n_clusters, n_init=config.n_init, random_state=random_state
                ),
            ),
        ]
    )


def fit_clusters(
    features: pd.DataFrame, config: ClusteringConfig, *, random_state: int
) -> tuple[Pipeline, np.ndarray]:
    """Fit the clusterer on one row per customer; return it and each customer's cluster."""
    n_clusters = min(config.n_clusters, len(features))
    clusterer = make_clusterer(
        config.model_copy(update={"n_clusters": n_clusters}), random_state=random_state
    )
    labels = clusterer.fit_predict(features)
    return clusterer, labels.astype("int64")


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
        "inertia": float(clusterer[-1].inertia_),
        "smallest_cluster_share": float(np.bincount(labels).min() / len(labels)),
    }
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
