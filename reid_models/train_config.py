"""Typed training configuration, parsed once from ``configs/train/<name>.yaml``.

Paths in the YAML are relative to the YAML file. Every key is documented in the shipped
configs; unknown keys are errors (a misspelt key must not silently train something else).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from reid_models.sampling import SamplingMode


class TrainConfigError(ValueError):
    """A training config that cannot be used; the message names the file and the fix."""


class DatasetKind(StrEnum):
    """Where training tracklets come from."""

    MINED = "mined"
    MARS = "mars"
    ILIDS_VID = "ilids_vid"
    PRID2011 = "prid2011"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(StrictModel):
    """Training data.

    Attributes:
        kind: ``mined`` (an index from ``python -m training.mine``) or a published dataset.
        path: the mined ``index.json``, or the dataset's root folder.
        min_tracklets_per_identity: identities with fewer tracklets are dropped (``1`` keeps
            every track; the PK sampler then draws different clips of the same tracklet).
        associate_cameras: mined data only: join pseudo-identities of different cameras that
            are mutual nearest neighbours under the pretrained backbone's TP features
            (``reid_models.associate``), so training sees people change cameras.
        association_min_similarity: lowest cosine similarity of such a join.
        geometric_positives: mined data only: join tracks of different cameras that the
            identity layer links by geometry (overlapping views, learned homography; no label:
            ``training.cross_camera_positives``) into one pseudo-identity.
    """

    kind: DatasetKind = DatasetKind.MINED
    path: Path
    min_tracklets_per_identity: int = Field(default=1, ge=1)
    associate_cameras: bool = False
    association_min_similarity: float = Field(default=0.75, ge=-1, le=1)
    geometric_positives: bool = False

    @model_validator(mode="after")
    def _one_association(self) -> DataConfig:
        if self.associate_cameras and self.geometric_positives:
            raise ValueError("choose associate_cameras or geometric_positives, not both")
        return self


class LossConfig(StrictModel):
    """Loss weights; the defaults are the papers' settings."""

    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    triplet_margin: float = Field(default=0.4, gt=0)
    identity_weight: float = Field(default=1.0, ge=0)
    video_triplet_weight: float = Field(default=1.0, ge=0)
    part_triplet_weight: float = Field(default=1.0, ge=0)
    diversity_weight: float = Field(default=0.1, ge=0)
    oim_scale: float = Field(default=10.0, gt=0)
    oim_momentum: float = Field(default=0.5, ge=0, le=1)


class AugmentationConfig(StrictModel):
    """Clip-level augmentation (the same transform for every frame of a clip).

    With a frozen trunk the images are augmented before caching: ``cached_variants`` random
    transforms per tracklet (``reid_models.tracklet_augmentation``: flip, colour jitter, crop
    jitter, erasing), each clip drawn from one of them or the plain crops; the maps themselves
    get only the flip.
    """

    horizontal_flip: float = Field(default=0.5, ge=0, le=1, description="probability")
    random_erasing: float = Field(
        default=0.5, ge=0, le=1, description="probability; images only (not with frozen maps)"
    )
    color_jitter: float = Field(
        default=0.2, ge=0, le=1, description="brightness/contrast range; images only"
    )
    crop_jitter: float = Field(default=0.1, ge=0, le=0.5, description="largest zoom-in")
    cached_variants: int = Field(
        default=0, ge=0, le=8, description="frozen trunk: augmented copies of each tracklet"
    )


class TrainConfig(StrictModel):
    """One training run.

    Attributes:
        model: ``rru_stim``, ``drsta`` (or ``tp``, which has nothing to train but the backbone).
        backbone: frame backbone name (``reid_models.backbones``).
        backbone_weights: backbone initialisation; ``null`` = the backbone's bundled default.
        freeze_backbone: train only the temporal head; the backbone's maps of every crop are
            computed once and cached, which makes CPU training take minutes.
        train_last_stage: with ``freeze_backbone``, also train the backbone's last stage and
            its pooling head (OSNet: ``conv5`` and ``fc``; batch-norm statistics stay
            frozen) at ``last_stage_learning_rate``, on cached trunk maps.
        clip_length: frames per training clip ``T`` (RRU+STIM paper: 8; DRSTA: N = 4..8).
        sampling: how training clips pick frames (``random``, or ``chunks`` as TSN/DRSTA).
        identities_per_batch, tracklets_per_identity: the PK sampler's ``P`` and ``K``.
        epochs: passes over the sampler's batches.
        learning_rate, weight_decay: Adam settings; the rate decays by ``lr_decay`` at each
            epoch in ``lr_milestones``.
        seed: every random source of the run.
        output: run folder (checkpoints, log); the final encoder file is ``export``.
        export: where the trained encoder (``reid_models.factory.save_encoder``) is written.
        training_data: free text recorded in the encoder's metadata.
    """

    model: Literal["rru_stim", "drsta", "tp"]
    backbone: str = "osnet_x0_25"
    backbone_weights: Path | None = None
    freeze_backbone: bool = True
    train_last_stage: bool = False
    last_stage_learning_rate: float = Field(default=3e-5, gt=0)
    data: DataConfig
    clip_length: int = Field(default=8, ge=1)
    sampling: SamplingMode = SamplingMode.RANDOM
    identities_per_batch: int = Field(default=8, ge=2)
    tracklets_per_identity: int = Field(default=4, ge=2)
    epochs: int = Field(default=10, ge=1)
    learning_rate: float = Field(default=3e-4, gt=0)
    weight_decay: float = Field(default=5e-4, ge=0)
    lr_milestones: list[int] = Field(default_factory=list)
    lr_decay: float = Field(default=0.1, gt=0, le=1)
    seed: int = 0
    loss: LossConfig = Field(default_factory=LossConfig)
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    output: Path
    export: Path
    training_data: str = ""

    @model_validator(mode="after")
    def _sampling_has_frames(self) -> TrainConfig:
        if self.sampling is SamplingMode.ALL:
            raise ValueError("sampling 'all' gives clips of varying length; use random or chunks")
        if self.model == "tp" and self.freeze_backbone:
            raise ValueError("tp has no parameters besides its backbone: set freeze_backbone false")
        return self


def load_train_config(path: Path | str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Parse a training YAML, resolving its paths against the file's folder.

    ``overrides`` maps dotted keys (``epochs``, ``data.path``) to values set before validation.

    Raises:
        TrainConfigError: missing file, bad YAML, unknown key or wrong value (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise TrainConfigError(
            f"training config not found: {path} (see configs/train/ for examples)"
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise TrainConfigError(f"{path}: not valid YAML ({error.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{path}: the top level must be a mapping")
    for key, value in (overrides or {}).items():
        target = raw
        *parents, leaf = key.split(".")
        for parent in parents:
            child = target.setdefault(parent, {})
            if not isinstance(child, dict):
                raise TrainConfigError(f"{path}: cannot set {key}: {parent} is not a mapping")
            target = child
        target[leaf] = value
    try:
        config = TrainConfig.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        raise TrainConfigError(f"{path}: {where}: {first['msg']}") from None
    base = path.parent
    config.data.path = _absolute(config.data.path, base)
    config.output = _absolute(config.output, base)
    config.export = _absolute(config.export, base)
    if config.backbone_weights is not None:
        config.backbone_weights = _absolute(config.backbone_weights, base)
        if not config.backbone_weights.is_file():
            raise TrainConfigError(f"{path}: backbone_weights not found: {config.backbone_weights}")
    return config


def _absolute(value: Path, base: Path) -> Path:
    return value if value.is_absolute() else (base / value).resolve()
