"""Channel importance for pruning: first-order Taylor (loss change), weight magnitude and functionality-oriented
redundancy."""

from .compensation import compensate
from .criteria import FunctionalityImportance, MagnitudeImportance, rank_channels, taylor_for
from .redundancy import Clustering, cluster_channels, cosine_similarity, redundancy_scores
from .signatures import compute_signatures, synthetic_batch
from .taylor import TaylorImportance

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
    "taylor_for",
    "TaylorImportance",
]
