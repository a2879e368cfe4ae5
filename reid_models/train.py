"""Train a video ReID encoder: ``python -m reid_models.train --config configs/train/<name>.yaml``.

    python -m reid_models.train --config configs/train/rru_stim_mined.yaml [--resume] \
        [--set epochs=2]

Batches come from the PK sampler (``reid_models.datasets.IdentityBalancedSampler``) with the
clip-sampling policy shared with the pipeline (``reid_models.sampling``). The losses are the
papers' (``reid_models.losses``): RRU+STIM cross-entropy + video triplet after STIM + part
triplet after the RRU; DRSTA OIM + Hellinger diversity regularizer.

With ``freeze_backbone`` (the CPU configs) the backbone trunk's maps of every training crop
are computed once (:class:`reid_models.feature_cache.FeatureMapCache`), plainly and for
``augmentation.cached_variants`` random transforms per tracklet; the temporal head trains on
them (and, with ``train_last_stage``, the backbone's last stage and pooling head at a low
rate); horizontal flips are applied to the maps. Otherwise clips are read from the crop files
every step with flip, brightness/contrast jitter and random erasing.

Mined data can be relabelled across cameras without labels: ``data.geometric_positives``
(the identity layer's geometric links, ``training.cross_camera_positives``) or
``data.associate_cameras`` (mutual nearest neighbours of the pretrained features).

Every epoch writes ``<output>/checkpoints/epoch_NNN.pt`` and ``<output>/last.pt`` (model with
classifier, loss state such as the OIM table, optimizer, scheduler, epoch, config, history);
``--resume`` continues from ``last.pt``. Random streams are derived from ``(seed, epoch)``, so
a resumed run ends with the same weights as an uninterrupted one. At the end the inference
encoder (no classifier) is written to ``export`` with its metadata (architecture, backbone,
input size, T, mean/std, embedding size, training data, git commit).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from tqdm import tqdm

from reid_models.associate import associate_identities
from reid_models.backbones import FrameBackbone, build_backbone
from reid_models.contract import INPUT_HEIGHT, INPUT_WIDTH
from reid_models.datasets import (
    IdentityBalancedSampler,
    Tracklet,
    load_ilids_vid,
    load_mars,
    load_prid2011,
    read_rgb_image,
    relabel_identities,
)
from reid_models.factory import EncoderMetadata, describe_encoder, save_encoder
from reid_models.feature_cache import FeatureMapCache
from reid_models.losses import DrstaLoss, LossBreakdown, RruStimLoss
from reid_models.mined_index import MinedIndex, MinedTracklet, read_index
from reid_models.sampling import sample_clip_indices
from reid_models.tracklet_augmentation import AugmentationRanges
from reid_models.train_config import DatasetKind, TrainConfig, TrainConfigError, load_train_config

logger = logging.getLogger("reid_models.train")

INPUT_SIZE = (INPUT_HEIGHT, INPUT_WIDTH)


CrossCameraRelabel = Callable[
    [TrainConfig, Sequence[MinedTracklet], Sequence[Tracklet]], list[Tracklet]
]
"""Relabels mined tracklets with cross-camera pseudo-identities: the identity layer's geometric
links (``training.cross_camera_positives.geometric_tracklets``; an application above this
package, so it is handed in, never imported)."""


def training_tracklets(
    config: TrainConfig, cross_camera: CrossCameraRelabel | None = None
) -> list[Tracklet]:
    """The training tracklets of the configured data, identities relabelled ``0 .. n-1``
    (``data.geometric_positives`` needs ``cross_camera``)."""
    data = config.data
    if data.kind is DatasetKind.MINED:
        index = read_index(data.path)
        records = [t for t in index.tracklets if t.split == "train"]
        tracklets = index.as_tracklets(records)
        if data.associate_cameras:
            tracklets = associated_tracklets(config, index, records, tracklets)
        elif data.geometric_positives:
            if cross_camera is None:
                raise TrainConfigError(
                    "data.geometric_positives: the identity layer relabels the tracks; train "
                    "with python -m training.train (or training.ablation), not reid_models.train"
                )
            tracklets = cross_camera(config, records, tracklets)
    elif data.kind is DatasetKind.MARS:
        tracklets = list(load_mars(data.path).train)
    elif data.kind is DatasetKind.ILIDS_VID:
        tracklets = list(load_ilids_vid(data.path).train)
    else:
        tracklets = list(load_prid2011(data.path).train)
    counts: dict[int, int] = {}
    for tracklet in tracklets:
        counts[tracklet.identity] = counts.get(tracklet.identity, 0) + 1
    kept = [t for t in tracklets if counts[t.identity] >= data.min_tracklets_per_identity]
    if len({tracklet.identity for tracklet in kept}) < config.identities_per_batch:
        raise TrainConfigError(
            f"{data.path}: only {len(kept)} usable training tracklets of "
            f"{len({t.identity for t in kept})} identities, fewer than identities_per_batch="
            f"{config.identities_per_batch}; mine more footage or lower identities_per_batch"
        )
    return list(relabel_identities(kept))


def pretrained_tp_features(config: TrainConfig, tracklets: Sequence[Tracklet]) -> np.ndarray:
    """Float32 ``(len(tracklets), D)``: TP embeddings of the configured pretrained backbone."""
    from reid_models.evaluate import NamedEncoder, embed_tracklets
    from reid_models.temporal_pooling import TemporalPoolingEncoder

    backbone = build_backbone(config.backbone, config.backbone_weights, pretrained=True)
    encoder = NamedEncoder("tp", TemporalPoolingEncoder(backbone).eval(), config.clip_length)
    return embed_tracklets(encoder, tracklets)


def associated_tracklets(
    config: TrainConfig,
    index: MinedIndex,
    records: Sequence[MinedTracklet],
    tracklets: Sequence[Tracklet],
) -> list[Tracklet]:
    """Relabel mined tracklets with cross-camera groups of their pseudo-identities."""
    features = pretrained_tp_features(config, tracklets)
    identities = sorted({tracklet.identity for tracklet in tracklets})
    position = {identity: row for row, identity in enumerate(identities)}
    summed = np.zeros((len(identities), features.shape[1]))
    cameras = [0] * len(identities)
    for tracklet, feature in zip(tracklets, features, strict=True):
        summed[position[tracklet.identity]] += feature
        cameras[position[tracklet.identity]] = tracklet.camera
    embeddings = summed / np.linalg.norm(summed, axis=1, keepdims=True)
    code_of_name = {
        record.name: tracklet.identity for record, tracklet in zip(records, tracklets, strict=True)
    }
    cannot_link = set()
    for record, tracklet in zip(records, tracklets, strict=True):
        for name in record.co_occurring:
            if name in code_of_name:
                first, second = position[tracklet.identity], position[code_of_name[name]]
                cannot_link.add((min(first, second), max(first, second)))
    groups = associate_identities(
        embeddings, cameras, cannot_link, config.data.association_min_similarity
    )
    joined = len(identities) - len(set(groups))
    persons: dict[int, set[str]] = {}
    for record, tracklet in zip(records, tracklets, strict=True):
        if record.person is not None:
            persons.setdefault(groups[position[tracklet.identity]], set()).add(record.person)
    mixed = sum(len(labels) > 1 for labels in persons.values())
    logger.info(
        "camera association: %d pseudo-identities -> %d (%d joins); diagnostic from the GT "
        "labels, never used for training: %d groups hold more than one person",
        len(identities),
        len(set(groups)),
        joined,
        mixed,
    )
    return [
        Tracklet(tracklet.image_paths, groups[position[tracklet.identity]], tracklet.camera)
        for tracklet in tracklets
    ]


def build_model(config: TrainConfig, identity_count: int) -> Any:
    """The encoder with its training head, backbone initialised from the config."""
    backbone = build_backbone(config.backbone, config.backbone_weights, pretrained=True)
    if config.model == "rru_stim":
        from reid_models.rru_stim import RruStimEncoder

        return RruStimEncoder(backbone, identity_count=identity_count)
    if config.model == "drsta":
        from reid_models.drsta import DrstaEncoder

        return DrstaEncoder(backbone)
    from reid_models.temporal_pooling import TemporalPoolingEncoder

    return TemporalPoolingEncoder(backbone)


def build_loss(config: TrainConfig, model: Any, identity_count: int) -> nn.Module:
    """The paper's objective for the configured model."""
    settings = config.loss
    if config.model == "rru_stim":
        return RruStimLoss(
            settings.label_smoothing,
            settings.triplet_margin,
            settings.triplet_margin,
            settings.identity_weight,
            settings.video_triplet_weight,
            settings.part_triplet_weight,
        )
    if config.model == "drsta":
        return DrstaLoss(
            int(model.embedding_dim),
            identity_count,
            settings.diversity_weight,
            settings.oim_scale,
            settings.oim_momentum,
        )
    from reid_models.losses import batch_hard_triplet_loss

    class TripletOnly(nn.Module):
        def forward(self, features: torch.Tensor, identities: torch.Tensor) -> LossBreakdown:
            value = batch_hard_triplet_loss(features, identities, settings.triplet_margin)
            return LossBreakdown(total=value, components={"video_triplet": value.detach()})

    return TripletOnly()


def compute_loss(
    config: TrainConfig,
    model: Any,
    loss: nn.Module,
    inputs: torch.Tensor,
    identities: torch.Tensor,
) -> LossBreakdown:
    """Forward one batch and combine the losses.

    Args:
        inputs: float32 clips ``(batch, T, 3, H, W)`` in ``[0, 1]``, or with a frozen backbone
            its trunk maps ``(batch, T, C, h, w)`` (the last stage is applied here).
        identities: int64 ``(batch,)``.
    """
    frozen = config.freeze_backbone
    if frozen:
        inputs = model.backbone.last_stage(inputs.flatten(0, 1)).unflatten(0, inputs.shape[:2])
    if config.model == "rru_stim":
        output = (
            model.training_outputs_from_maps(inputs) if frozen else model.training_outputs(inputs)
        )
        return loss(output.logits, output.video_features, output.part_features, identities)
    if config.model == "drsta":
        output = (
            model.training_outputs_from_maps(inputs) if frozen else model.training_outputs(inputs)
        )
        return loss(output.video_features, output.attention_maps, identities)
    features = model.frame_features(inputs).mean(dim=1)
    return loss(features, identities)


def augment_clips(
    clips: torch.Tensor, config: TrainConfig, generator: torch.Generator
) -> torch.Tensor:
    """Same transform for all frames of a clip: flip, jitter, erasing (images in ``[0, 1]``).

    Args:
        clips: float32 ``(batch, T, 3, H, W)``; with a frozen backbone feature maps
            ``(batch, T, C, h, w)``, which only get the flip.
    """
    settings = config.augmentation
    batch = clips.shape[0]
    flip = torch.rand(batch, generator=generator) < settings.horizontal_flip
    clips = torch.where(flip.view(batch, 1, 1, 1, 1), clips.flip(-1), clips)
    if config.freeze_backbone:
        return clips
    jitter = settings.color_jitter
    if jitter > 0:
        gain = 1.0 + (torch.rand(batch, 1, 1, 1, 1, generator=generator) * 2 - 1) * jitter
        offset = (torch.rand(batch, 1, 1, 1, 1, generator=generator) * 2 - 1) * jitter / 2
        clips = (clips * gain + offset).clamp(0.0, 1.0)
    height, width = clips.shape[-2:]
    for item in range(batch):
        if float(torch.rand(1, generator=generator)) >= settings.random_erasing:
            continue
        area = float(torch.empty(1).uniform_(0.02, 0.3, generator=generator)) * height * width
        aspect = float(torch.empty(1).uniform_(0.3, 3.3, generator=generator))
        box_height = min(height, max(1, round((area * aspect) ** 0.5)))
        box_width = min(width, max(1, round((area / aspect) ** 0.5)))
        top = int(torch.randint(0, height - box_height + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - box_width + 1, (1,), generator=generator))
        fill = torch.rand(3, 1, 1, generator=generator)
        clips[item, :, :, top : top + box_height, left : left + box_width] = fill
    return clips


EpochCallback = Callable[["Trainer"], None]


def build_cache(
    config: TrainConfig,
    backbone: FrameBackbone,
    normalization: nn.Module,
    tracklets: Sequence[Tracklet],
) -> FeatureMapCache:
    """Trunk maps of every training crop, with ``augmentation.cached_variants`` augmented
    copies of each tracklet (``reid_models.feature_cache``)."""
    settings = config.augmentation
    ranges = AugmentationRanges(
        settings.horizontal_flip,
        settings.color_jitter,
        settings.crop_jitter,
        settings.random_erasing,
    )
    return FeatureMapCache.build(
        backbone,
        normalization,
        tracklets,
        augmented_variants=settings.cached_variants,
        ranges=ranges,
        seed=config.seed,
    )


class Trainer:
    """One training run of a :class:`TrainConfig`; :meth:`run` trains, checkpoints, exports.

    Args:
        config: the run.
        tracklets: training tracklets (default: :func:`training_tracklets` of ``config``).
        cache: cached trunk maps to reuse (several runs on the same crops and backbone).
        on_epoch: called after every epoch and once before the first (``epoch == 0``), e.g. to
            record a learning curve.
        cross_camera: see :func:`training_tracklets`.
    """

    def __init__(
        self,
        config: TrainConfig,
        tracklets: Sequence[Tracklet] | None = None,
        cache: FeatureMapCache | None = None,
        on_epoch: EpochCallback | None = None,
        cross_camera: CrossCameraRelabel | None = None,
    ) -> None:
        self.config = config
        torch.manual_seed(config.seed)
        if tracklets is None:
            tracklets = training_tracklets(config, cross_camera)
        self.tracklets = list(tracklets)
        self.on_epoch = on_epoch
        self.identity_count = len({tracklet.identity for tracklet in self.tracklets})
        # Any: the three encoders share no base class with their training entry points.
        self.model: Any = build_model(config, self.identity_count)
        self.loss = build_loss(config, self.model, self.identity_count)
        last_stage: list[nn.Parameter] = []
        if config.freeze_backbone:
            for parameter in self.model.backbone.parameters():
                parameter.requires_grad_(False)
            if config.train_last_stage:
                for module in self.model.backbone.last_stage_modules():
                    last_stage.extend(module.parameters())
                for parameter in last_stage:
                    parameter.requires_grad_(True)
        chosen = {id(parameter) for parameter in last_stage}
        parameters = [p for p in self.model.parameters() if p.requires_grad and id(p) not in chosen]
        parameters += [p for p in self.loss.parameters() if p.requires_grad]
        groups: list[dict[str, Any]] = [{"params": parameters}]
        if last_stage:
            groups.append({"params": last_stage, "lr": config.last_stage_learning_rate})
        self.optimizer = torch.optim.Adam(
            groups, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=config.lr_milestones, gamma=config.lr_decay
        )
        self.sampler = IdentityBalancedSampler(
            [tracklet.identity for tracklet in self.tracklets],
            config.identities_per_batch,
            config.tracklets_per_identity,
            config.seed,
        )
        self.cache: FeatureMapCache | None = cache
        self.history: list[dict[str, Any]] = []
        self.epoch = 0

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_path(self, epoch: int) -> Path:
        return self.config.output / "checkpoints" / f"epoch_{epoch:03d}.pt"

    def save_checkpoint(self) -> None:
        state = {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "loss": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "config": self.config.model_dump(mode="json"),
            "metadata": self.metadata().model_dump(mode="json"),
            "history": self.history,
        }
        path = self.checkpoint_path(self.epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        temporary = self.config.output / "last.pt.partial"
        torch.save(state, temporary)
        temporary.replace(self.config.output / "last.pt")

    def resume(self) -> None:
        """Continue from ``<output>/last.pt``."""
        path = self.config.output / "last.pt"
        if not path.is_file():
            raise TrainConfigError(f"nothing to resume: {path} does not exist (drop --resume)")
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history = list(state["history"])
        self.epoch = int(state["epoch"])
        logger.info("resumed from %s after epoch %d", path, self.epoch)

    # ------------------------------------------------------------------ training

    def batch_inputs(self, items: list[int], generator: np.random.Generator) -> torch.Tensor:
        """Clips (or cached maps) of the dataset items of one batch."""
        config = self.config
        clips = []
        for item in items:
            tracklet = self.tracklets[item]
            indices = sample_clip_indices(
                len(tracklet.image_paths), config.clip_length, config.sampling, generator
            )
            if self.cache is not None:
                variant = int(generator.integers(self.cache.variant_count))
                clips.append(self.cache.maps_of(tracklet, indices, variant).float())
            else:
                frames = [
                    read_rgb_image(tracklet.image_paths[index], INPUT_SIZE) for index in indices
                ]
                clips.append(torch.from_numpy(np.stack(frames)))
        return torch.stack(clips)

    def train_epoch(self) -> dict[str, Any]:
        config = self.config
        epoch = self.epoch + 1
        generator = np.random.default_rng([config.seed, epoch])
        torch_generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        torch.manual_seed(config.seed * 100_003 + epoch)
        self.model.train()
        if config.freeze_backbone:
            self.model.backbone.eval()
        totals: dict[str, float] = {}
        batches = self.sampler.batches(epoch)
        started = time.monotonic()
        with tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", unit="batch") as progress:
            for items in progress:
                inputs = augment_clips(self.batch_inputs(items, generator), config, torch_generator)
                identities = torch.tensor(
                    [self.tracklets[item].identity for item in items], dtype=torch.int64
                )
                breakdown = compute_loss(config, self.model, self.loss, inputs, identities)
                self.optimizer.zero_grad()
                breakdown.total.backward()
                self.optimizer.step()
                for name, value in {
                    "total": breakdown.total.detach(),
                    **breakdown.components,
                }.items():
                    totals[name] = totals.get(name, 0.0) + float(value)
                progress.set_postfix(loss=f"{float(breakdown.total.detach()):.3f}")
        self.scheduler.step()
        self.epoch = epoch
        averages = {name: round(value / max(1, len(batches)), 5) for name, value in totals.items()}
        record = {
            "epoch": epoch,
            "batches": len(batches),
            "seconds": round(time.monotonic() - started, 1),
            "loss": averages,
        }
        self.history.append(record)
        return record

    def run(self, resume: bool = False) -> Path:
        """Train up to ``config.epochs``, checkpointing every epoch; export the encoder."""
        config = self.config
        if resume:
            self.resume()
        config.output.mkdir(parents=True, exist_ok=True)
        (config.output / "config.yaml").write_text(
            yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
        )
        logger.info(
            "%s on %d tracklets of %d identities, %d epochs",
            config.model,
            len(self.tracklets),
            self.identity_count,
            config.epochs,
        )
        if config.freeze_backbone and self.epoch < config.epochs and self.cache is None:
            self.cache = build_cache(
                config, self.model.backbone, self.model.normalization, self.tracklets
            )
        if self.on_epoch is not None and self.epoch == 0:
            self.on_epoch(self)
        with (config.output / "train_log.jsonl").open("a") as log:
            while self.epoch < config.epochs:
                record = self.train_epoch()
                log.write(json.dumps(record) + "\n")
                log.flush()
                logger.info("epoch %d: %s", record["epoch"], record["loss"])
                self.save_checkpoint()
                if self.on_epoch is not None:
                    self.on_epoch(self)
        return self.export()

    def metadata(self) -> EncoderMetadata:
        """What the trained encoder is: architecture, backbone, input, T, mean/std, size,
        training data, git commit."""
        config = self.config
        return describe_encoder(
            self.model,
            config.model,
            config.backbone,
            clip_length=config.clip_length,
            training_data=config.training_data or str(config.data.path),
        )

    def export(self) -> Path:
        """Write the inference encoder (no training head) with its metadata."""
        config = self.config
        model = self.model
        remove = getattr(model, "remove_classifier", None)
        classifier = remove() if remove is not None else None
        model.eval()
        save_encoder(config.export, model, self.metadata())
        if classifier is not None:
            model.classifier = classifier
        return config.export


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs (dotted keys such as ``data.path``; values parsed as YAML)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise TrainConfigError(f"--set expects key=value, got {pair!r}")
        overrides[key] = yaml.safe_load(value)
    return overrides


def main(
    argv: Sequence[str] | None = None,
    cross_camera: CrossCameraRelabel | None = None,
    program: str = "python -m reid_models.train",
) -> int:
    parser = argparse.ArgumentParser(prog=program, description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="configs/train/<name>.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from <output>/last.pt")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_train_config(arguments.config, parse_overrides(arguments.set))
        path = Trainer(config, cross_camera=cross_camera).run(resume=arguments.resume)
    except (TrainConfigError, ValueError, OSError) as error:
        logger.error("%s", error)
        return 2
    logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
