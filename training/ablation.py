"""Train the seed encoders step by step and record held-out learning curves.

    python -m training.ablation --config configs/train/rru_stim_mined.yaml \
        --config configs/train/drsta_mined.yaml --out reid_models/RESULTS.md

For every training config, four runs, each adding one thing to the previous (:data:`STEPS`):

1. the zero-initialised residual head alone (per-camera pseudo-identities, flipped maps);
2. + cross-camera positives from the identity layer's geometry (``data.geometric_positives``);
3. + consistent-per-tracklet augmentation (``augmentation.cached_variants``);
4. + the backbone's last stage trained at a low rate (``train_last_stage``): the config as
   shipped, whose encoder file is the one ``make reid-results`` evaluates.

The runs share one cache of trunk maps (the plain crops and every augmented variant) and one
held-out probe (``reid_models.held_out_probe``) that scores each run after every epoch; epoch
0 is the untrained encoder, which equals TP. Nothing is chosen from those scores: every run
trains its configured epochs and keeps its last weights. Writes the ablation table into the
``out`` markdown between ``<!-- ablation:start -->`` and ``<!-- ablation:end -->``, the curves
as ``learning_curves.json`` and ``learning_curves.png`` beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from reid_models.backbones import build_backbone
from reid_models.contract import ImageNormalization
from reid_models.datasets import Tracklet
from reid_models.evaluate import machine_line, write_between_markers
from reid_models.feature_cache import FeatureMapCache
from reid_models.held_out_probe import HeldOutProbe, temporal_pooling_of_maps
from reid_models.mined_index import read_index
from reid_models.train import Trainer, build_cache, parse_overrides, training_tracklets
from reid_models.train_config import TrainConfig, TrainConfigError, load_train_config
from training.cross_camera_positives import geometric_tracklets

logger = logging.getLogger("training.ablation")

ABLATION_START = "<!-- ablation:start -->"
ABLATION_END = "<!-- ablation:end -->"
DISPLAY_NAMES = {"rru_stim": "RRU+STIM", "drsta": "DRSTA"}


@dataclass(frozen=True)
class AblationStep:
    """One run: a name and the config keys it sets (empty: the config as shipped)."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)


STEPS: tuple[AblationStep, ...] = (
    AblationStep(
        "zero-init residual alone",
        {
            "data.geometric_positives": False,
            "data.associate_cameras": False,
            "augmentation.cached_variants": 0,
            "train_last_stage": False,
        },
    ),
    AblationStep(
        "+ cross-camera positives",
        {"augmentation.cached_variants": 0, "train_last_stage": False},
    ),
    AblationStep("+ augmentation", {"train_last_stage": False}),
    AblationStep("+ unfrozen last stage"),
)


@dataclass
class RunRecord:
    """One run's learning curve (held-out scores per epoch, epoch 0 untrained)."""

    model: str
    step: str
    curve: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    identities: int = 0


def step_config(
    path: Path, step: AblationStep, position: int, common: dict[str, Any] | None = None
) -> TrainConfig:
    """The config of one step (``common``: keys set for every step, e.g. ``epochs``); all but
    the last step write under ``runs/ablation``."""
    config = load_train_config(path, {**(common or {}), **step.overrides})
    if position < len(STEPS) - 1:
        folder = config.output.parent.parent / "ablation" / config.output.name / f"step{position}"
        config.output = folder
        config.export = folder / "encoder.pt"
    return config


class Ablation:
    """Runs :data:`STEPS` for several configs with a shared cache and probe."""

    def __init__(self, config_paths: Sequence[Path], common: dict[str, Any] | None = None) -> None:
        self.config_paths = list(config_paths)
        self.common = dict(common or {})
        first = load_train_config(self.config_paths[0], self.common)
        backbone = build_backbone(first.backbone, first.backbone_weights, pretrained=True)
        self.backbone = backbone.eval()
        self.normalization = ImageNormalization()
        self.probe = HeldOutProbe.build(
            read_index(first.data.path), backbone, self.normalization, first.clip_length
        )
        self.temporal_pooling = self.probe.score(backbone, temporal_pooling_of_maps(backbone))
        logger.info("TP on the held-out probe: %s", self.temporal_pooling)
        self.cache: FeatureMapCache | None = None
        self.tracklets: dict[tuple[bool, bool], list[Tracklet]] = {}
        self.runs: list[RunRecord] = []

    def tracklets_of(self, config: TrainConfig) -> list[Tracklet]:
        key = (config.data.geometric_positives, config.data.associate_cameras)
        if key not in self.tracklets:
            self.tracklets[key] = training_tracklets(config, geometric_tracklets)
        return self.tracklets[key]

    def cache_for(self, config: TrainConfig, tracklets: Sequence[Tracklet]) -> FeatureMapCache:
        if self.cache is None:
            variants = max(
                step_config(path, step, position, self.common).augmentation.cached_variants
                for path in self.config_paths
                for position, step in enumerate(STEPS)
            )
            widest = config.model_copy(
                update={
                    "augmentation": config.augmentation.model_copy(
                        update={"cached_variants": variants}
                    )
                }
            )
            self.cache = build_cache(widest, self.backbone, self.normalization, tracklets)
        return self.cache.limited(config.augmentation.cached_variants + 1)

    def run(self) -> list[RunRecord]:
        for path in self.config_paths:
            for position, step in enumerate(STEPS):
                config = step_config(path, step, position, self.common)
                if not config.freeze_backbone:
                    raise TrainConfigError(f"{path}: the ablation needs freeze_backbone: true")
                self.runs.append(self.train(config, step))
        return self.runs

    def train(self, config: TrainConfig, step: AblationStep) -> RunRecord:
        tracklets = self.tracklets_of(config)
        record = RunRecord(config.model, step.name)

        def score(trainer: Trainer) -> None:
            trainer.model.eval()
            scores = self.probe.score(trainer.model.backbone, trainer.model.embed_maps)
            record.curve.append({"epoch": trainer.epoch, **scores})
            logger.info("%s / %s, epoch %d: %s", config.model, step.name, trainer.epoch, scores)

        started = time.monotonic()
        trainer = Trainer(config, tracklets, self.cache_for(config, tracklets), on_epoch=score)
        record.identities = trainer.identity_count
        trainer.run()
        record.seconds = round(time.monotonic() - started, 1)
        return record


def ablation_table(runs: Sequence[RunRecord], temporal_pooling: dict[str, float]) -> str:
    """Markdown: one row per step, rank-1 and mAP after the last epoch for each model."""
    models = list(dict.fromkeys(run.model for run in runs))
    header = "| step | " + " | ".join(
        f"{DISPLAY_NAMES.get(m, m)} rank-1 | {DISPLAY_NAMES.get(m, m)} mAP" for m in models
    )
    lines = [header + " |", "|---|" + "---:|---:|" * len(models)]
    tp_cells = [f"{temporal_pooling['rank1']:.1f} | {temporal_pooling['mAP']:.1f}"] * len(models)
    lines.append("| TP (nothing trained) | " + " | ".join(tp_cells) + " |")
    for step in STEPS:
        cells = []
        for model in models:
            run = next(r for r in runs if r.model == model and r.step == step.name)
            last = run.curve[-1]
            cells.append(f"{last['rank1']:.1f} | {last['mAP']:.1f}")
        lines.append(f"| {step.name} | " + " | ".join(cells) + " |")
    details = "; ".join(
        f"{DISPLAY_NAMES.get(r.model, r.model)} {r.step}: {r.identities} pseudo-identities, "
        f"{r.seconds:.0f} s"
        for r in runs
    )
    return "\n".join(lines) + f"\n\nRuns: {details}.\n"


def plot_curves(path: Path, runs: Sequence[RunRecord], temporal_pooling: dict[str, float]) -> None:
    """Held-out mAP per epoch, one panel per model, TP as a horizontal line (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    models = list(dict.fromkeys(run.model for run in runs))
    figure, axes = pyplot.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for axis, model in zip(axes[0], models, strict=True):
        for position, step in enumerate(STEPS):
            run = next(r for r in runs if r.model == model and r.step == step.name)
            epochs = [point["epoch"] for point in run.curve]
            values = [point["mAP"] for point in run.curve]
            last = position == len(STEPS) - 1
            axis.plot(
                epochs,
                values,
                label=step.name,
                linewidth=2.0 if last else 1.0,
                linestyle="-" if last else "--",
            )
        axis.axhline(temporal_pooling["mAP"], color="black", linewidth=1.0, label="TP")
        axis.set_title(f"{DISPLAY_NAMES.get(model, model)}: held-out cross-camera retrieval")
        axis.set_xlabel("epoch")
        axis.set_ylabel("mAP (%)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def write_outputs(out: Path, runs: Sequence[RunRecord], temporal_pooling: dict[str, float]) -> None:
    """The table into ``out``, the curves as JSON and PNG beside it."""
    curves = {
        "machine": machine_line(),
        "temporal_pooling": temporal_pooling,
        "runs": [run.__dict__ for run in runs],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / "learning_curves.json").write_text(json.dumps(curves, indent=1) + "\n")
    plot_curves(out.parent / "learning_curves.png", runs, temporal_pooling)
    body = (
        f"Measured on {curves['machine']}.\n\n"
        "Held-out cross-camera retrieval after each run's last epoch (the probe of "
        "`reid_models.held_out_probe`; the same protocol as the table above).\n\n"
        f"{ablation_table(runs, temporal_pooling)}\n"
        "![held-out mAP per epoch](learning_curves.png)\n"
    )
    write_between_markers(out, ABLATION_START, ABLATION_END, body)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ablation", description=__doc__)
    parser.add_argument("--config", type=Path, action="append", required=True)
    parser.add_argument("--out", type=Path, required=True, help="markdown to write into")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="for every run"
    )
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.manual_seed(0)
    try:
        ablation = Ablation(arguments.config, parse_overrides(arguments.set))
        runs = ablation.run()
    except (TrainConfigError, ValueError, OSError) as error:
        logger.error("%s", error)
        return 2
    write_outputs(arguments.out, runs, ablation.temporal_pooling)
    logger.info("wrote %s", arguments.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
