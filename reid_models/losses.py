"""Training losses of the video ReID encoders.

Building blocks:

- :func:`cross_entropy_with_label_smoothing`: identity classification (Szegedy et al. 2016).
- :func:`batch_hard_triplet_loss`: hardest positive / hardest negative per anchor
  (Hermans et al. 2017), on Euclidean distances of the raw features.
- :func:`part_triplet_loss`: the same, averaged over horizontal part features.
- :func:`hellinger_diversity_regularizer`: DRSTA's ``||Q Q^T - I||_F^2`` on attention maps.
- :class:`OnlineInstanceMatchingLoss`: OIM (Xiao et al., CVPR 2017), the identity loss DRSTA
  trains with.

Combined losses, one per model, each returning a :class:`LossBreakdown`:

- :class:`RruStimLoss`: identity CE + video triplet (after STIM) + part triplet (after RRU), as
  in the authors' release (yolomax/person-reid-lib, ``tasks/task_video/architecture.py``).
- :class:`DrstaLoss`: OIM + lambda * diversity regularizer, as in Li et al. (CVPR 2018), with an
  optional video triplet term that is off by default.

Identity labels are int64 ``(batch,)`` in ``[0, identity_count)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LossBreakdown:
    """A combined loss and its parts.

    Attributes:
        total: scalar float tensor to call ``backward()`` on.
        components: each weighted term, detached scalar tensors, for logging.
    """

    total: torch.Tensor
    components: dict[str, torch.Tensor]


def cross_entropy_with_label_smoothing(
    logits: torch.Tensor, identities: torch.Tensor, epsilon: float = 0.1
) -> torch.Tensor:
    """Cross-entropy against ``(1 - epsilon) * one_hot + epsilon / num_classes``.

    Args:
        logits: float ``(batch, num_classes)``, unnormalised.
        identities: int64 ``(batch,)``.
        epsilon: smoothing in ``[0, 1)``; 0 gives plain cross-entropy.

    Returns:
        Scalar, mean over the batch.
    """
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"epsilon must be in [0, 1), got {epsilon}")
    log_probabilities = F.log_softmax(logits, dim=1)
    true_class = -log_probabilities.gather(1, identities.unsqueeze(1)).squeeze(1)
    uniform = -log_probabilities.mean(dim=1)
    return ((1.0 - epsilon) * true_class + epsilon * uniform).mean()


def pairwise_euclidean_distances(features: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between all rows: float ``(batch, D)`` -> ``(batch, batch)``.

    The diagonal is exactly zero; off-diagonal entries are clamped away from zero before the
    square root so the gradient stays finite.
    """
    squared_norms = features.pow(2).sum(dim=1)
    squared = squared_norms[:, None] + squared_norms[None, :] - 2.0 * features @ features.T
    distances = squared.clamp_min(1e-12).sqrt()
    eye = torch.eye(features.shape[0], dtype=torch.bool, device=features.device)
    return distances.masked_fill(eye, 0.0)


def batch_hard_triplet_loss(
    features: torch.Tensor, identities: torch.Tensor, margin: float = 0.3
) -> torch.Tensor:
    """Batch-hard triplet loss: ``mean(relu(max d(a, p) - min d(a, n) + margin))``.

    Args:
        features: float ``(batch, D)``, used as they are (not normalised).
        identities: int64 ``(batch,)``; a PK batch (P identities x K samples) is expected.
        margin: the triplet margin, ``>= 0``.

    Returns:
        Scalar, mean over anchors that have at least one positive (other than themselves) and
        one negative in the batch; zero (with a graph) when no anchor qualifies.
    """
    distances = pairwise_euclidean_distances(features)
    same_identity = identities[:, None] == identities[None, :]
    eye = torch.eye(features.shape[0], dtype=torch.bool, device=features.device)
    positive_mask = same_identity & ~eye
    negative_mask = ~same_identity
    valid = positive_mask.any(dim=1) & negative_mask.any(dim=1)
    if not bool(valid.any()):
        return features.sum() * 0.0
    hardest_positive = distances.masked_fill(~positive_mask, float("-inf")).amax(dim=1)
    hardest_negative = distances.masked_fill(~negative_mask, float("inf")).amin(dim=1)
    losses = F.relu(hardest_positive - hardest_negative + margin)
    return losses[valid].mean()


def part_triplet_loss(
    part_features: torch.Tensor, identities: torch.Tensor, margin: float = 0.3
) -> torch.Tensor:
    """Batch-hard triplet loss on each part separately, averaged over parts.

    Args:
        part_features: float ``(batch, parts, D)``.
        identities: int64 ``(batch,)``.
        margin: triplet margin.

    Returns:
        Scalar.
    """
    part_count = part_features.shape[1]
    total = part_features.new_zeros(())
    for part_index in range(part_count):
        total = total + batch_hard_triplet_loss(part_features[:, part_index], identities, margin)
    return total / part_count


def hellinger_diversity_regularizer(attention_maps: torch.Tensor) -> torch.Tensor:
    """DRSTA's diversity term ``||Q Q^T - I||_F^2`` with ``Q`` rows ``sqrt(attention)``.

    Each attention map is a distribution over ``L`` spatial positions. Since
    ``sqrt(s_i) . sqrt(s_j) = 1 - H^2(s_i, s_j)`` (``H`` the Hellinger distance), the term is
    ``sum_{i != j} (1 - H^2(s_i, s_j))^2``: 0 when the ``K`` maps have disjoint supports and
    ``K (K - 1)`` (its maximum) when they are identical.

    Args:
        attention_maps: float ``(..., K, L)``, non-negative, each row summing to 1 (e.g. the
            ``(batch, frames, K, L)`` spatial attention of DRSTA).

    Returns:
        Scalar: the term per set of ``K`` maps, averaged over the leading dimensions.
    """
    part_count = attention_maps.shape[-2]
    roots = attention_maps.clamp_min(1e-12).sqrt()
    gram = roots @ roots.transpose(-1, -2)
    identity = torch.eye(part_count, dtype=gram.dtype, device=gram.device)
    return (gram - identity).pow(2).sum(dim=(-1, -2)).mean()


class OnlineInstanceMatchingLoss(nn.Module):
    """OIM loss (Xiao et al., "Joint Detection and Identification Feature Learning", 2017).

    A lookup table holds one L2-normalised feature per training identity. Logits are
    ``scale * normalise(feature) . table^T``; the loss is their cross-entropy. After each
    training forward the rows of the identities in the batch are moved towards the batch
    features, ``row <- normalise(momentum * row + (1 - momentum) * feature)``. The table starts
    at zero, so the first batch of each identity gives no gradient through its row.

    Args:
        feature_dim: ``D``.
        identity_count: number of training identities.
        scale: inverse temperature (Xiao et al. use temperature 0.1, i.e. scale 10).
        momentum: table update momentum in ``[0, 1)``.
    """

    lookup_table: torch.Tensor

    def __init__(
        self, feature_dim: int, identity_count: int, scale: float = 10.0, momentum: float = 0.5
    ) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.scale = scale
        self.momentum = momentum
        self.register_buffer("lookup_table", torch.zeros(identity_count, feature_dim))

    def forward(self, features: torch.Tensor, identities: torch.Tensor) -> torch.Tensor:
        """Float ``(batch, D)`` features and int64 ``(batch,)`` identities -> scalar loss."""
        normalized = F.normalize(features, dim=1)
        logits = self.scale * normalized @ self.lookup_table.clone().T
        loss = F.cross_entropy(logits, identities)
        if self.training:
            self._update_table(normalized.detach(), identities)
        return loss

    @torch.no_grad()
    def _update_table(self, normalized: torch.Tensor, identities: torch.Tensor) -> None:
        for feature, identity in zip(normalized, identities.tolist(), strict=True):
            row = self.momentum * self.lookup_table[identity] + (1.0 - self.momentum) * feature
            self.lookup_table[identity] = F.normalize(row, dim=0)


class RruStimLoss(nn.Module):
    """RRU+STIM training objective.

    ``identity_weight * CE(logits) + video_weight * triplet(video feature after STIM)
    + part_weight * mean_over_parts triplet(part features after RRU)``. The authors use plain
    cross-entropy and margin 0.4 for both triplet terms with unit weights; label smoothing is
    our addition (set ``label_smoothing=0`` for the original).
    """

    def __init__(
        self,
        label_smoothing: float = 0.1,
        video_margin: float = 0.4,
        part_margin: float = 0.4,
        identity_weight: float = 1.0,
        video_weight: float = 1.0,
        part_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        self.video_margin = video_margin
        self.part_margin = part_margin
        self.identity_weight = identity_weight
        self.video_weight = video_weight
        self.part_weight = part_weight

    def forward(
        self,
        logits: torch.Tensor | None,
        video_features: torch.Tensor,
        part_features: torch.Tensor,
        identities: torch.Tensor,
    ) -> LossBreakdown:
        """Combine the three terms.

        Args:
            logits: float ``(batch, identity_count)`` from the classifier head.
            video_features: float ``(batch, D)`` after STIM, not normalised.
            part_features: float ``(batch, parts, C)`` pooled from the RRU output.
            identities: int64 ``(batch,)``.
        """
        if logits is None:
            raise ValueError("RruStimLoss needs logits: build the model with identity_count")
        components = {
            "identity": self.identity_weight
            * cross_entropy_with_label_smoothing(logits, identities, self.label_smoothing),
            "video_triplet": self.video_weight
            * batch_hard_triplet_loss(video_features, identities, self.video_margin),
            "part_triplet": self.part_weight
            * part_triplet_loss(part_features, identities, self.part_margin),
        }
        return _breakdown(components)


class DrstaLoss(nn.Module):
    """DRSTA training objective: ``OIM(video feature) + diversity_weight * ||QQ^T - I||_F^2``.

    Li et al. train with OIM plus the diversity regularizer; ``triplet_weight > 0`` adds a
    batch-hard triplet term on the video feature (off by default). The regularizer is averaged
    over the ``(batch, frames)`` sets of ``K`` maps, so it lies in ``[0, K (K - 1)]``.

    Args:
        feature_dim: video feature size ``D`` (``K * part_dim`` for DRSTA).
        identity_count: number of training identities (rows of the OIM table).
        diversity_weight: the regularizer's coefficient lambda.
        oim_scale: OIM inverse temperature.
        oim_momentum: OIM table momentum.
        triplet_weight: weight of the optional video triplet term.
        triplet_margin: its margin.
    """

    def __init__(
        self,
        feature_dim: int,
        identity_count: int,
        diversity_weight: float = 0.1,
        oim_scale: float = 10.0,
        oim_momentum: float = 0.5,
        triplet_weight: float = 0.0,
        triplet_margin: float = 0.3,
    ) -> None:
        super().__init__()
        self.identity_loss = OnlineInstanceMatchingLoss(
            feature_dim, identity_count, oim_scale, oim_momentum
        )
        self.diversity_weight = diversity_weight
        self.triplet_weight = triplet_weight
        self.triplet_margin = triplet_margin

    def forward(
        self, video_features: torch.Tensor, attention_maps: torch.Tensor, identities: torch.Tensor
    ) -> LossBreakdown:
        """Combine the terms.

        Args:
            video_features: float ``(batch, D)``, the concatenated part features.
            attention_maps: float ``(batch, frames, K, L)`` spatial attention distributions.
            identities: int64 ``(batch,)``.
        """
        components = {
            "oim": self.identity_loss(video_features, identities),
            "diversity": self.diversity_weight * hellinger_diversity_regularizer(attention_maps),
        }
        if self.triplet_weight > 0.0:
            components["video_triplet"] = self.triplet_weight * batch_hard_triplet_loss(
                video_features, identities, self.triplet_margin
            )
        return _breakdown(components)


def _breakdown(components: dict[str, torch.Tensor]) -> LossBreakdown:
    total = torch.stack(list(components.values())).sum()
    return LossBreakdown(
        total=total, components={name: value.detach() for name, value in components.items()}
    )
