"""Build ReID clip encoders by name, and save/load encoder files that carry their metadata.

Registry
--------
:data:`ENCODER_BUILDERS` maps an encoder name to the ``"module.path:function"`` of its builder;
the module is imported only when that encoder is built, so architectures never import each
other. A builder is called with keyword arguments only (see :class:`EncoderBuilder`)::

    builder(weights=..., backbone=..., backbone_weights=..., pretrained=...) -> nn.Module

and must return, in eval mode, a module that follows ``reid_models.contract``: ``forward``
maps float32 ``(batch, T, 3, H, W)`` RGB in ``[0, 1]`` to float32 ``(batch, embedding_dim)``
with unit L2 norm, its first layer is an :class:`~reid_models.contract.ImageNormalization`
stored as ``self.normalization``, and it has an ``embedding_dim: int`` attribute.

To add an architecture, write its builder next to the model and add one line here, e.g.
``"rru_stim": "reid_models.rru_stim:build_rru_stim_encoder"`` or
``"drsta": "reid_models.drsta:build_drsta_encoder"``, or call :func:`register_encoder`.

Encoder files
-------------
:func:`save_encoder` writes ``torch.save({"metadata": dict, "state_dict": ...})`` where the
metadata is :class:`EncoderMetadata` as plain JSON types, so ``torch.load(weights_only=True)``
reads it. :func:`load_encoder` rebuilds the architecture named in the metadata and loads the
state dict with ``strict=True``; the runtime trusts the file's metadata, not a config.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from reid_models.contract import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_HEIGHT,
    INPUT_WIDTH,
    ImageNormalization,
)

logger = logging.getLogger(__name__)

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP_LENGTH = 8


class EncoderBuilder(Protocol):
    """Signature of every encoder builder in :data:`ENCODER_BUILDERS`.

    Args:
        weights: a weight file that is *not* an encoder checkpoint (those are handled by
            :func:`build_encoder`), or ``None``; what it holds is up to the architecture.
        backbone: frame backbone name (``reid_models.backbones.backbone_names()``).
        backbone_weights: weights for the backbone; ``None`` = the backbone's default.
        pretrained: ``False`` asks for random initialisation everywhere (a full state dict is
            about to be loaded over it).
    """

    def __call__(
        self,
        *,
        weights: Path | None,
        backbone: str,
        backbone_weights: Path | None,
        pretrained: bool,
    ) -> nn.Module: ...


ENCODER_BUILDERS: dict[str, str] = {
    "tp": "reid_models.temporal_pooling:build_temporal_pooling_encoder",
    "rru_stim": "reid_models.rru_stim:build_rru_stim_encoder",
    "drsta": "reid_models.drsta:build_drsta_encoder",
}


class EncoderMetadata(BaseModel):
    """What an encoder file says about the model it holds.

    Attributes:
        architecture: encoder name in :data:`ENCODER_BUILDERS` (``"tp"``, ...).
        backbone: frame backbone name.
        input_height, input_width: crop size in pixels the encoder was trained/tuned for.
        clip_length: frames per clip ``T`` it expects.
        mean, std: RGB normalisation applied by its first layer, for inputs in ``[0, 1]``.
        embedding_dim: size of the L2-normalised output.
        training_data: free text naming the training set(s), e.g. ``"MSMT17"``.
        git_commit: commit of the code that wrote the file, ``None`` if unknown.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: str
    backbone: str
    input_height: int = Field(default=INPUT_HEIGHT, ge=1)
    input_width: int = Field(default=INPUT_WIDTH, ge=1)
    clip_length: int = Field(default=DEFAULT_CLIP_LENGTH, ge=1)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    embedding_dim: int = Field(ge=1)
    training_data: str = ""
    git_commit: str | None = None


def encoder_names() -> list[str]:
    """Names accepted by :func:`build_encoder`, sorted."""
    return sorted(ENCODER_BUILDERS)


def register_encoder(name: str, target: str) -> None:
    """Register a builder by ``"module.path:function"`` without importing it."""
    ENCODER_BUILDERS[name] = target


def _resolve_builder(name: str) -> EncoderBuilder:
    target = ENCODER_BUILDERS.get(name)
    if target is None:
        known = ", ".join(encoder_names())
        raise ValueError(f"unknown encoder {name!r}; known encoders: {known}")
    module_name, _, function_name = target.partition(":")
    module = importlib.import_module(module_name)
    return cast(EncoderBuilder, getattr(module, function_name))


def _read_checkpoint(path: Path) -> Any:
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def _is_encoder_checkpoint(loaded: Any) -> bool:
    return isinstance(loaded, Mapping) and "metadata" in loaded and "state_dict" in loaded


def is_encoder_checkpoint(path: Path) -> bool:
    """Whether ``path`` was written by :func:`save_encoder` (holds metadata and a state dict)."""
    return _is_encoder_checkpoint(_read_checkpoint(path))


def build_encoder(
    model: str,
    weights: Path | None = None,
    backbone: str = "osnet_x0_25",
    backbone_weights: Path | None = None,
) -> nn.Module:
    """Build a clip encoder by name, on the CPU in eval mode.

    Args:
        model: one of :func:`encoder_names`.
        weights: an encoder file from :func:`save_encoder` (then its metadata decides the
            backbone), or an architecture-specific weight file (for ``"tp"``: backbone
            weights), or ``None``. ``"tp"`` with ``None`` uses the bundled OSNet x0.25 MSMT17
            weights when ``backbone`` is ``"osnet_x0_25"``.
        backbone: frame backbone name.
        backbone_weights: backbone weights; ``None`` = the backbone's bundled default.

    Raises:
        ValueError: unknown ``model``, or an encoder file written for another architecture.
    """
    builder = _resolve_builder(model)
    if weights is not None:
        loaded = _read_checkpoint(weights)
        if _is_encoder_checkpoint(loaded):
            metadata = EncoderMetadata.model_validate(loaded["metadata"])
            if metadata.architecture != model:
                raise ValueError(
                    f"{weights} holds a {metadata.architecture!r} encoder, not {model!r}"
                )
            if metadata.backbone != backbone:
                logger.warning(
                    "%s was trained with backbone %s; using it instead of %s",
                    weights,
                    metadata.backbone,
                    backbone,
                )
            encoder, _ = _encoder_from_checkpoint(loaded, str(weights))
            return encoder
    encoder = builder(
        weights=None if weights is None else Path(weights),
        backbone=backbone,
        backbone_weights=None if backbone_weights is None else Path(backbone_weights),
        pretrained=True,
    )
    return encoder.eval()


def current_git_commit() -> str | None:
    """The repository's ``HEAD`` commit, or ``None`` when git or the repository is missing."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPOSITORY_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = completed.stdout.strip()
    return commit if completed.returncode == 0 and commit else None


def _normalization_of(encoder: nn.Module) -> ImageNormalization:
    normalization = getattr(encoder, "normalization", None)
    if not isinstance(normalization, ImageNormalization):
        raise TypeError(
            f"{type(encoder).__name__} has no `normalization: ImageNormalization` first layer"
        )
    return normalization


def _embedding_dim_of(encoder: nn.Module) -> int:
    embedding_dim = getattr(encoder, "embedding_dim", None)
    if not isinstance(embedding_dim, int):
        raise TypeError(f"{type(encoder).__name__} has no `embedding_dim: int` attribute")
    return embedding_dim


def describe_encoder(
    encoder: nn.Module,
    architecture: str,
    backbone: str,
    *,
    clip_length: int = DEFAULT_CLIP_LENGTH,
    training_data: str = "",
    input_height: int = INPUT_HEIGHT,
    input_width: int = INPUT_WIDTH,
) -> EncoderMetadata:
    """Metadata for ``encoder``: mean/std and embedding size read from the module itself,
    ``git_commit`` from the repository."""
    normalization = _normalization_of(encoder)
    # Rounded so float32 buffers give back the decimal values they were made from.
    mean = tuple(round(float(value), 6) for value in normalization.mean.flatten())
    std = tuple(round(float(value), 6) for value in normalization.std.flatten())
    return EncoderMetadata(
        architecture=architecture,
        backbone=backbone,
        input_height=input_height,
        input_width=input_width,
        clip_length=clip_length,
        mean=cast(tuple[float, float, float], mean),
        std=cast(tuple[float, float, float], std),
        embedding_dim=_embedding_dim_of(encoder),
        training_data=training_data,
        git_commit=current_git_commit(),
    )


def save_encoder(path: Path, encoder: nn.Module, metadata: EncoderMetadata) -> None:
    """Write ``{"metadata": dict, "state_dict": ...}`` to ``path`` (atomically, CPU tensors).

    Raises:
        ValueError: ``metadata.embedding_dim`` differs from the encoder's ``embedding_dim``.
    """
    if metadata.embedding_dim != _embedding_dim_of(encoder):
        raise ValueError(
            f"metadata says embedding_dim={metadata.embedding_dim}, "
            f"encoder has {_embedding_dim_of(encoder)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state_dict = {name: tensor.detach().cpu() for name, tensor in encoder.state_dict().items()}
    temporary_path = path.with_name(path.name + ".partial")
    torch.save(
        {"metadata": metadata.model_dump(mode="json"), "state_dict": state_dict}, temporary_path
    )
    os.replace(temporary_path, path)
    logger.info("saved %s encoder to %s", metadata.architecture, path)


def read_encoder_metadata(path: Path) -> EncoderMetadata:
    """The metadata of an encoder file written by :func:`save_encoder`."""
    loaded = _read_checkpoint(path)
    if not _is_encoder_checkpoint(loaded):
        raise ValueError(f"{path} is not an encoder file (no metadata/state_dict)")
    return EncoderMetadata.model_validate(loaded["metadata"])


def _encoder_from_checkpoint(
    loaded: Mapping[str, Any], source: str
) -> tuple[nn.Module, EncoderMetadata]:
    metadata = EncoderMetadata.model_validate(loaded["metadata"])
    builder = _resolve_builder(metadata.architecture)
    encoder = builder(
        weights=None, backbone=metadata.backbone, backbone_weights=None, pretrained=False
    )
    _normalization_of(encoder)
    encoder.normalization = ImageNormalization(metadata.mean, metadata.std)
    encoder.load_state_dict(loaded["state_dict"], strict=True)
    if _embedding_dim_of(encoder) != metadata.embedding_dim:
        raise ValueError(
            f"{source}: metadata says embedding_dim={metadata.embedding_dim}, "
            f"the rebuilt encoder has {_embedding_dim_of(encoder)}"
        )
    logger.info("loaded %s/%s encoder from %s", metadata.architecture, metadata.backbone, source)
    return encoder.eval(), metadata


def load_encoder(path: Path) -> tuple[nn.Module, EncoderMetadata]:
    """Rebuild the encoder described by an encoder file and load its weights (strict).

    Returns the encoder on the CPU in eval mode, and its metadata.

    Raises:
        ValueError: not an encoder file, or an unknown architecture.
        RuntimeError: a state dict that does not fit the rebuilt encoder.
    """
    loaded = _read_checkpoint(path)
    if not _is_encoder_checkpoint(loaded):
        raise ValueError(f"{path} is not an encoder file (no metadata/state_dict)")
    return _encoder_from_checkpoint(loaded, str(path))
