"""Redundancy among channel signatures: similarity, clustering, representatives, ranking.

Channels are clustered by average-linkage agglomerative clustering on cosine distance. The
merges are replayed in order: at every merge the two clusters' representatives compete and the
loser (less contributing, or less central) becomes a *repeat*. Repeats are ranked lowest, in
merge order, so the first ``n - k`` channels of the ranking are exactly the non-representatives
of the ``k``-cluster cut: pruning down to width ``k`` keeps one representative per cluster.
Representatives that survive all applied merges are ranked among themselves by contribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform

RepresentativeRule = Literal["contribution", "central"]


@dataclass(frozen=True)
class Clustering:
    """Outcome of redundancy clustering over ``n`` channels."""

    labels: np.ndarray
    """Cluster id per channel (``0 .. n_clusters - 1``)."""
    representatives: np.ndarray
    """The kept channel of each cluster, indexed by cluster id."""
    order: np.ndarray
    """All channels, least important first: repeats in merge order, then representatives."""


def cosine_similarity(signatures: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarity ``[n, n]`` of signature rows; two all-zero rows count as identical."""
    norms = signatures.norm(dim=1)
    unit = signatures / norms.clamp_min(1e-12).unsqueeze(1)
    similarity = (unit @ unit.T).clamp(-1.0, 1.0)
    dead = norms < 1e-12
    similarity[dead.unsqueeze(1) & dead.unsqueeze(0)] = 1.0
    return similarity


def _merge_tree(similarity: np.ndarray) -> np.ndarray:
    """SciPy average-linkage tree on cosine distance ``1 - similarity``."""
    distance = np.clip(1.0 - similarity, 0.0, 2.0)
    distance = (distance + distance.T) / 2.0
    np.fill_diagonal(distance, 0.0)
    return linkage(squareform(distance, checks=False), method="average")


def _merges_to_apply(tree: np.ndarray, n: int, threshold: float | None, n_clusters: int | None) -> int:
    """How many merges of ``tree`` to replay for the requested cut."""
    if n_clusters is not None:
        if not 1 <= n_clusters <= n:
            raise ValueError(f"n_clusters must be in [1, {n}], got {n_clusters}")
        return n - n_clusters
    if threshold is not None:
        return int(np.count_nonzero(tree[:, 2] <= threshold))
    return n - 1


def cluster_channels(
    signatures: torch.Tensor,
    contribution: torch.Tensor,
    threshold: float | None = None,
    n_clusters: int | None = None,
    representative: RepresentativeRule = "contribution",
) -> Clustering:
    """Cluster channels by signature and pick one representative per cluster.

    ``n_clusters`` cuts the tree into exactly that many clusters; otherwise ``threshold`` (a
    cosine distance) merges every pair of clusters closer than it; with neither, the whole tree
    is replayed. ``representative`` keeps the member with the highest ``contribution`` or the
    one with the highest mean similarity to its cluster ("central").
    """
    n = signatures.shape[0]
    contrib = contribution.detach().double().cpu().numpy()
    if n == 1:
        return Clustering(np.zeros(1, dtype=int), np.zeros(1, dtype=int), np.zeros(1, dtype=int))
    similarity = cosine_similarity(signatures.detach().double().cpu()).numpy()
    tree = _merge_tree(similarity)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    rep: dict[int, int] = {i: i for i in range(n)}
    repeats: list[int] = []
    for step in range(_merges_to_apply(tree, n, threshold, n_clusters)):
        a, b = int(tree[step, 0]), int(tree[step, 1])
        merged = members.pop(a) + members.pop(b)
        ra, rb = rep.pop(a), rep.pop(b)
        if representative == "central":
            score_a, score_b = similarity[ra, merged].mean(), similarity[rb, merged].mean()
        else:
            score_a, score_b = contrib[ra], contrib[rb]
        keep, drop = (ra, rb) if score_a >= score_b else (rb, ra)
        repeats.append(drop)
        members[n + step], rep[n + step] = merged, keep
    labels = np.empty(n, dtype=int)
    for cluster_id, cluster in enumerate(members.values()):
        labels[cluster] = cluster_id
    kept = np.array(list(rep.values()), dtype=int)
    survivors = kept[np.argsort(contrib[kept], kind="stable")]
    return Clustering(labels, kept, np.concatenate([np.array(repeats, dtype=int), survivors]))


def redundancy_scores(
    signatures: torch.Tensor,
    contribution: torch.Tensor,
    threshold: float | None = None,
    n_clusters: int | None = None,
    representative: RepresentativeRule = "contribution",
) -> torch.Tensor:
    """Importance per channel in ``(0, 1]`` (higher = keep): the rank in :func:`cluster_channels`' order."""
    order = cluster_channels(signatures, contribution, threshold, n_clusters, representative).order
    scores = torch.empty(len(order))
    scores[torch.from_numpy(order)] = torch.arange(1, len(order) + 1, dtype=torch.float32) / len(order)
    return scores
