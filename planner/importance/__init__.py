"""Channel importance for pruning: weight magnitude and functionality-oriented redundancy."""

from .compensation import compensate
from .criteria import FunctionalityImportance, MagnitudeImportance, rank_channels
from .redundancy import Clustering, cluster_channels, cosine_similarity, redundancy_scores
from .signatures import compute_signatures, synthetic_batch

__all__ = [
    "Clustering",
    "FunctionalityImportance",
    "MagnitudeImportance",
    "cluster_channels",
    "compensate",
    "compute_signatures",
    "cosine_similarity",
    "rank_channels",
    "redundancy_scores",
    "synthetic_batch",
]
