"""Hand-checked values of the ReID losses and the Hellinger diversity regularizer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reid_models.losses import (
    DrstaLoss,
    OnlineInstanceMatchingLoss,
    RruStimLoss,
    batch_hard_triplet_loss,
    cross_entropy_with_label_smoothing,
    hellinger_diversity_regularizer,
    pairwise_euclidean_distances,
    part_triplet_loss,
)


def test_label_smoothing_matches_hand_value_and_torch() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    identities = torch.tensor([0])
    log_probabilities = F.log_softmax(logits, dim=1)[0]
    epsilon = 0.3
    expected = -(1 - epsilon) * log_probabilities[0] - epsilon * log_probabilities.mean()
    value = cross_entropy_with_label_smoothing(logits, identities, epsilon)
    assert value.item() == pytest.approx(expected.item())
    torch_value = F.cross_entropy(logits, identities, label_smoothing=epsilon)
    assert value.item() == pytest.approx(torch_value.item(), rel=1e-6)
    plain = cross_entropy_with_label_smoothing(logits, identities, 0.0)
    assert plain.item() == pytest.approx(F.cross_entropy(logits, identities).item())


def test_label_smoothing_rejects_bad_epsilon() -> None:
    with pytest.raises(ValueError):
        cross_entropy_with_label_smoothing(torch.zeros(1, 2), torch.tensor([0]), 1.0)


def test_pairwise_distances_have_zero_diagonal_and_finite_gradient() -> None:
    features = torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]], requires_grad=True)
    distances = pairwise_euclidean_distances(features)
    assert distances[0, 1].item() == pytest.approx(5.0)
    assert torch.all(distances.diagonal() == 0)
    distances.sum().backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()


def test_batch_hard_triplet_hand_case() -> None:
    # Points on a line: identity 0 at 0 and 1, identity 1 at 3 and 6.
    # Anchor 0: hardest positive 1, hardest negative 3 -> relu(1 - 3 + 1) = 0.
    # Anchor 1: pos 1, neg 2 -> relu(1 - 2 + 1) = 0.
    # Anchor 3: pos 3, neg 2 -> relu(3 - 2 + 1) = 2.
    # Anchor 6: pos 3, neg 5 -> relu(3 - 5 + 1) = 0.  Mean = 0.5.
    features = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    identities = torch.tensor([0, 0, 1, 1])
    loss = batch_hard_triplet_loss(features, identities, margin=1.0)
    assert loss.item() == pytest.approx(0.5, abs=1e-5)


def test_batch_hard_triplet_ignores_anchors_without_positive() -> None:
    # Identity 2 (feature 10) has no positive: only anchors 0 and 1 count.
    # Anchor 0: pos 1, neg min(3, 10) = 3 -> relu(1 - 3 + 3) = 1; anchor 1: pos 1, neg 2 -> 2.
    features = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    identities = torch.tensor([0, 0, 1, 2])
    loss = batch_hard_triplet_loss(features, identities, margin=3.0)
    assert loss.item() == pytest.approx(1.5, abs=1e-5)


def test_batch_hard_triplet_is_zero_with_graph_when_no_anchor_qualifies() -> None:
    features = torch.randn(3, 4, requires_grad=True)
    loss = batch_hard_triplet_loss(features, torch.tensor([0, 1, 2]))
    assert loss.item() == 0.0
    loss.backward()


def test_part_triplet_is_mean_over_parts() -> None:
    generator = torch.Generator().manual_seed(0)
    parts = torch.randn(6, 3, 5, generator=generator)
    identities = torch.tensor([0, 0, 1, 1, 2, 2])
    expected = sum(batch_hard_triplet_loss(parts[:, index], identities) for index in range(3)) / 3
    assert part_triplet_loss(parts, identities).item() == pytest.approx(float(expected))


def test_diversity_regularizer_zero_for_disjoint_maps() -> None:
    # Three maps over six positions with disjoint supports (each uniform on two positions).
    maps = torch.zeros(2, 3, 6)
    for part in range(3):
        maps[:, part, 2 * part : 2 * part + 2] = 0.5
    assert hellinger_diversity_regularizer(maps).item() == pytest.approx(0.0, abs=1e-6)


def test_diversity_regularizer_maximal_for_identical_maps() -> None:
    part_count = 4
    maps = torch.softmax(torch.randn(1, 6), dim=1).expand(part_count, 6)
    value = hellinger_diversity_regularizer(maps.unsqueeze(0))
    assert value.item() == pytest.approx(part_count * (part_count - 1), rel=1e-5)
    # Any other set of distributions scores lower.
    random_maps = torch.softmax(3 * torch.randn(5, part_count, 6), dim=2)
    assert hellinger_diversity_regularizer(random_maps).item() < part_count * (part_count - 1)


def test_diversity_regularizer_equals_hellinger_formula() -> None:
    # Two maps: the term is 2 * (1 - H^2)^2 with H^2 = 1 - sum sqrt(p q).
    p = torch.tensor([0.5, 0.5, 0.0, 0.0])
    q = torch.tensor([0.0, 0.5, 0.25, 0.25])
    hellinger_squared = 0.5 * ((p.sqrt() - q.sqrt()) ** 2).sum()
    expected = 2 * (1 - hellinger_squared) ** 2
    value = hellinger_diversity_regularizer(torch.stack([p, q]))
    assert value.item() == pytest.approx(expected.item(), abs=1e-5)
    assert expected.item() == pytest.approx(0.5, abs=1e-6)


def test_oim_table_update_and_loss() -> None:
    loss_function = OnlineInstanceMatchingLoss(feature_dim=2, identity_count=3, scale=10.0)
    features = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    identities = torch.tensor([0, 2])
    first = loss_function(features, identities)
    # Empty table: all logits zero, loss log(3), and no gradient reaches the features.
    assert first.item() == pytest.approx(math.log(3))
    first.backward()
    assert features.grad is not None and torch.all(features.grad == 0)
    # Rows 0 and 2 now hold the normalised features; row 1 is still empty.
    torch.testing.assert_close(
        loss_function.lookup_table, torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    )
    second = loss_function(features, identities)
    # Logits of each sample: 10 for its own row, 0 for the others -> log(1 + 2 e^-10).
    expected = math.log(1 + 2 * math.exp(-10))
    assert second.item() == pytest.approx(expected, abs=1e-6)


def test_oim_eval_mode_does_not_update_table() -> None:
    loss_function = OnlineInstanceMatchingLoss(feature_dim=2, identity_count=2).eval()
    loss_function(torch.tensor([[1.0, 0.0]]), torch.tensor([1]))
    assert torch.all(loss_function.lookup_table == 0)


def test_rru_stim_loss_combines_terms() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 3, generator=generator, requires_grad=True)
    video = torch.randn(4, 8, generator=generator, requires_grad=True)
    parts = torch.randn(4, 2, 5, generator=generator, requires_grad=True)
    identities = torch.tensor([0, 0, 1, 1])
    breakdown = RruStimLoss(label_smoothing=0.1, video_weight=2.0)(logits, video, parts, identities)
    assert set(breakdown.components) == {"identity", "video_triplet", "part_triplet"}
    expected = (
        cross_entropy_with_label_smoothing(logits, identities, 0.1)
        + 2.0 * batch_hard_triplet_loss(video, identities, 0.4)
        + part_triplet_loss(parts, identities, 0.4)
    )
    assert breakdown.total.item() == pytest.approx(expected.item(), rel=1e-6)
    breakdown.total.backward()
    assert logits.grad is not None and video.grad is not None and parts.grad is not None
    with pytest.raises(ValueError, match="logits"):
        RruStimLoss()(None, video, parts, identities)


def test_drsta_loss_combines_terms() -> None:
    video = torch.randn(4, 6, requires_grad=True)
    maps = torch.softmax(torch.randn(4, 3, 2, 5), dim=3)
    identities = torch.tensor([0, 0, 1, 1])
    loss_function = DrstaLoss(feature_dim=6, identity_count=2, diversity_weight=0.5)
    breakdown = loss_function(video, maps, identities)
    assert set(breakdown.components) == {"oim", "diversity"}
    assert breakdown.components["diversity"].item() == pytest.approx(
        0.5 * hellinger_diversity_regularizer(maps).item()
    )
    with_triplet = DrstaLoss(6, 2, triplet_weight=1.0)(video, maps, identities)
    assert "video_triplet" in with_triplet.components
