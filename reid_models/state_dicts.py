"""Reading a weights file into a plain state dict, whatever wrapped it.

Checkpoints from torchreid, training scripts and ``DataParallel`` hold the same tensors in
different envelopes: the state dict itself, or under ``"state_dict"`` or ``"model"``, with
names prefixed by ``module.`` (or a wrapper attribute). Every model of ``reid_models`` reads
its weights through :func:`read_state_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

WRAPPER_KEYS = ("state_dict", "model")
"""Keys a checkpoint may hold its state dict under, unwrapped in this order."""


def read_state_dict(
    path: Path, strip_prefixes: tuple[str, ...] = ("module.",)
) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (CPU tensors), unwrapped and with ``strip_prefixes`` removed
    from every name (each prefix at most once, in order).

    Raises:
        ValueError: the file does not hold a state dict.
    """
    loaded = torch.load(Path(path), map_location="cpu", weights_only=True)
    for key in WRAPPER_KEYS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path}: expected a state dict, found {type(loaded).__name__}")
    state_dict = {}
    for name, tensor in loaded.items():
        for prefix in strip_prefixes:
            name = name.removeprefix(prefix)
        state_dict[name] = tensor
    return state_dict
