"""Weights files in every envelope read into the same plain state dict."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from reid_models.state_dicts import read_state_dict


@pytest.mark.parametrize(
    "envelope",
    [
        lambda state: state,
        lambda state: {"state_dict": state, "epoch": 3},
        lambda state: {"model": state},
        lambda state: {f"module.{name}": tensor for name, tensor in state.items()},
    ],
)
def test_envelopes_unwrap_to_the_same_tensors(
    envelope: Callable[[dict[str, torch.Tensor]], object], tmp_path: Path
) -> None:
    state = {"layer.weight": torch.ones(2, 2), "layer.bias": torch.zeros(2)}
    torch.save(envelope(state), tmp_path / "weights.pt")
    loaded = read_state_dict(tmp_path / "weights.pt")
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[name], state[name]) for name in state)


def test_prefixes_are_stripped_in_order(tmp_path: Path) -> None:
    torch.save({"module.backbone.conv": torch.ones(1)}, tmp_path / "weights.pt")
    assert list(read_state_dict(tmp_path / "weights.pt", ("module.", "backbone."))) == ["conv"]


def test_not_a_state_dict_is_a_value_error(tmp_path: Path) -> None:
    torch.save([1, 2], tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="expected a state dict"):
        read_state_dict(tmp_path / "weights.pt")
