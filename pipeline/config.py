"""Typed configuration: one YAML file parsed once into pydantic objects, with CLI overrides.

The YAML layout mirrors :class:`CrosscamConfig`; every section has defaults, so a config file
may hold only ``cameras``. Unknown keys and wrong types are errors. Relative paths written in
the YAML (video files, weights, output folders) are resolved against the folder of the YAML
file; the defaults are absolute, in the project (:data:`PROJECT_ROOT`): the bundled detector
weights in ``assets/weights/`` and run data in ``runs/``, so a config anywhere (the repository
root, ``/etc/crosscam/``) works without naming them.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engines.base import BackendName
from reid_models.clip_input import InputFormat
from reid_models.sampling import SamplingMode

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The crosscam checkout (or installed tree): bundled assets and the default run folder."""


class ConfigError(Exception):
    """A configuration problem, with a one-line message naming the key or path and the fix."""


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on set."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ReplayMode(StrEnum):
    """How a video file is replayed: at its own frame rate, or as fast as the pipeline goes."""

    REALTIME = "realtime"
    FAST = "fast"


class GroundPoint(StrictModel):
    """One image↔ground correspondence of a user's camera calibration."""

    image: tuple[float, float] = Field(description="pixel x, y of a point on the ground")
    ground: tuple[float, float] = Field(description="the same point on the ground, metres")


class GroundCalibration(StrictModel):
    """A user's calibration of one camera: image pixels → ground metres. Give either a 3x3
    ``homography`` or at least four ``points``; it replaces the learned geometry."""

    homography: list[list[float]] | None = None
    points: list[GroundPoint] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_of_them(self) -> GroundCalibration:
        if self.homography is not None:
            matrix = self.homography
            if len(matrix) != 3 or any(len(row) != 3 for row in matrix):
                raise ValueError("ground.homography must be a 3x3 list of rows")
            if self.points:
                raise ValueError("give ground.homography or ground.points, not both")
        elif len(self.points) < 4:
            raise ValueError(
                f"ground.points needs at least 4 image/ground pairs, got {len(self.points)}"
            )
        return self


class CameraConfig(StrictModel):
    """One camera.

    ``uri`` is a video file path, an ``rtsp://``/``rtsps://``/``http://`` URL, or a webcam
    index such as ``0``.
    """

    id: int = Field(ge=0, description="camera id used in events and in MTMC output")
    uri: str
    name: str = ""
    replay: ReplayMode = ReplayMode.FAST
    loop: bool = False
    fps_cap: float | None = Field(default=None, gt=0, description="process at most this fps")
    start_seconds: float = Field(default=0.0, ge=0, description="files: start of the segment")
    end_seconds: float | None = Field(default=None, gt=0, description="files: end of segment")
    queue_size: int = Field(default=8, ge=1)
    ground: GroundCalibration | None = Field(
        default=None, description="your own calibration of this camera (else learned)"
    )
    decoder: Literal["opencv", "pyav", "nvdec"] = Field(
        default="opencv",
        description=(
            "opencv: OpenCV's FFmpeg backend (default); pyav: PyAV, the FFmpeg libraries bundled "
            "with the `av` wheel, on the CPU; nvdec: PyAV with FFmpeg's CUDA hwaccel (NVDEC on "
            "an NVIDIA GPU; frames are copied back to host memory as BGR). Webcams: opencv only"
        ),
    )

    @field_validator("decoder")
    @classmethod
    def _webcams_decode_with_opencv(cls, value: str, info: ValidationInfo) -> str:
        uri = str(info.data.get("uri", ""))
        if value != "opencv" and uri.isdigit():
            raise ValueError(
                f"camera {info.data.get('id')} is a webcam (uri {uri!r}) and webcams are read "
                f"by OpenCV only: set decoder: opencv (or leave the key out)"
            )
        return value

    @model_validator(mode="after")
    def _segment_is_not_empty(self) -> CameraConfig:
        if self.end_seconds is not None and self.end_seconds <= self.start_seconds:
            raise ValueError(
                f"end_seconds ({self.end_seconds}) must be after start_seconds "
                f"({self.start_seconds})"
            )
        return self

    @field_validator("uri", mode="before")
    @classmethod
    def _uri_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @property
    def is_file(self) -> bool:
        """True when the URI is a path on disk rather than a network URL or a webcam index."""
        return not (self.is_network or self.is_webcam)

    @property
    def is_network(self) -> bool:
        """True for RTSP and HTTP streams."""
        return self.uri.split("://", 1)[0].lower() in {"rtsp", "rtsps", "http", "https"}

    @property
    def is_webcam(self) -> bool:
        """True for a webcam index such as ``0``."""
        return self.uri.isdigit()

    @property
    def display_name(self) -> str:
        """A short human name: the configured name or ``cam<id>``."""
        return self.name or f"cam{self.id}"


class DetectorConfig(StrictModel):
    """The YOLO person detector (both classes of the bundled weights are persons)."""

    weights: Path = PROJECT_ROOT / "assets" / "weights" / "yolov8_person_hfd.pt"
    image_size: int = Field(default=416, ge=32, description="inference size, multiple of 32")
    confidence: float = Field(default=0.35, ge=0, le=1)
    class_confidence: dict[int, float] = Field(
        default_factory=lambda: {1: 0.6},
        description="per-class minimum confidence overriding `confidence`",
    )
    person_classes: list[int] = Field(default_factory=lambda: [0, 1])
    min_box_height: int = Field(default=24, ge=0, description="pixels; smaller boxes dropped")
    device: str = "cpu"
    backend: Literal["auto", "torch", "onnx", "tensorrt"] = Field(
        default="auto",
        description="torch runs the .pt; onnx/tensorrt export it once with ultralytics into the "
        "engine cache (~/.cache/crosscam/detector) and run that; auto: tensorrt on CUDA when "
        "installed (else torch), onnx on the CPU",
    )

    @field_validator("image_size")
    @classmethod
    def _multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError(f"must be a multiple of 32 (e.g. {value - value % 32})")
        return value


class TrackerAlgorithm(StrEnum):
    """Per-camera trackers of the ``trackers`` package."""

    BOTSORT = "botsort"
    BYTETRACK = "bytetrack"
    OCSORT = "ocsort"


class TrackerConfig(StrictModel):
    """Per-camera tracking (the ``trackers`` package). Buffers are in seconds, so they mean the
    same whatever ``fps_cap`` is. The default, BoT-SORT with a 2 s buffer, was chosen on the
    first half of terrace1 (per-camera IDF1; benchmarks/results/accuracy/README.md)."""

    algorithm: TrackerAlgorithm = TrackerAlgorithm.BOTSORT
    lost_track_seconds: float = Field(default=2.0, gt=0, description="a lost track is kept")
    track_activation_threshold: float = Field(default=0.5, ge=0, le=1)
    high_confidence_threshold: float = Field(default=0.5, ge=0, le=1)
    minimum_consecutive_frames: int = Field(default=2, ge=1)
    minimum_iou_threshold: float = Field(
        default=0.1, ge=0, le=1, description="bytetrack / ocsort: first association"
    )
    camera_motion_compensation: bool = Field(
        default=False, description="botsort: for moving (PTZ, handheld) cameras; costs CPU"
    )


class ClipsConfig(StrictModel):
    """Per-track crop buffers and when they emit clips."""

    clip_length: int = Field(default=8, ge=1, description="T frames per clip")
    sampling: SamplingMode = SamplingMode.EVENLY
    crop_height: int = Field(default=256, ge=16)
    crop_width: int = Field(default=128, ge=8)
    refresh_seconds: float = Field(default=4.0, gt=0, description="re-emit a live track's clip")
    max_frames_per_track: int = Field(default=64, ge=1, description="newest crops kept")
    max_tracks: int = Field(default=256, ge=1, description="per camera")
    min_frames: int = Field(default=4, ge=1, description="shorter tracks never emit a clip")
    track_end_seconds: float = Field(default=1.5, gt=0, description="unseen this long = ended")
    held_frames_megabytes: float = Field(
        default=128.0,
        ge=0,
        description="per camera: frames kept for crops taken when a clip samples them; 0: crop "
        "every box at once (pipeline/lazy_crops.py)",
    )
    refresh_policy: Literal["always", "uncertain"] = Field(
        default="uncertain",
        description="always: encode every refresh clip; uncertain: only where it can change a "
        "decision (pipeline/refresh_policy.py)",
    )
    settled_clips: int = Field(
        default=2, ge=1, description="uncertain: clips in a row on one identity settle a track"
    )
    better_crops_factor: float = Field(
        default=1.2, gt=1, description="uncertain: crops this much taller or better are encoded"
    )
    settled_refresh_seconds: float = Field(
        default=16.0, gt=0, description="uncertain: a settled track still refreshes this often"
    )


class EncoderConfig(StrictModel):
    """The video ReID encoder and its engine."""

    model: str = "tp"
    weights: Path | None = None
    backbone: str = "osnet_x0_25"
    backend: BackendName = Field(
        default="auto",
        description="torch | onnxruntime | tensorrt | auto (the fastest this machine has)",
    )
    device: str = "cpu"
    max_batch: int = Field(default=16, ge=1)
    max_wait_ms: float = Field(default=20.0, ge=0)
    input_format: InputFormat = Field(
        default="uint8_bgr",
        description="the input of graphs exported for this encoder (onnxruntime, tensorrt; "
        "torch converts on its device): float32_rgb clips converted on the CPU, or uint8_bgr "
        "crops converted inside the graph; an .onnx/.engine file's own metadata wins",
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        """Checked at load, so a typo is a config error, not a traceback after loading."""
        from reid_models.factory import encoder_names  # torch: only when the YAML sets it

        if model not in encoder_names():
            raise ValueError(f"unknown encoder; choose one of: {', '.join(encoder_names())}")
        return model


class ThresholdMode(StrEnum):
    """How the match threshold is set: fixed, or learned from the negatives seen so far."""

    FIXED = "fixed"
    QUANTILE = "quantile"


class TopologyMode(StrEnum):
    """What a match outside a camera pair's transition window gets."""

    PENALIZE = "penalize"
    FORBID = "forbid"


class TransitionWindow(StrictModel):
    """How long a person takes from ``from_camera`` to ``to_camera`` (``overlap``: the views
    overlap, so being seen in both at once is normal)."""

    from_camera: int
    to_camera: int
    min_seconds: float = 0.0
    max_seconds: float = Field(default=60.0, ge=0)
    overlap: bool = False
    symmetric: bool = Field(default=True, description="also applies from to_camera to from_camera")


class MatchingConfig(StrictModel):
    """Cross-camera identity matching."""

    similarity_threshold: float = Field(default=0.75, ge=-1, le=1)
    merge_threshold: float = Field(default=0.85, ge=-1, le=1)
    identity_ttl_seconds: float = Field(default=600.0, gt=0)
    max_feature_weight: float = Field(
        default=8.0, gt=0, description="cap on accumulated clip quality behind a feature"
    )
    prototypes_per_identity: int = Field(
        default=1, ge=1, description="diverse clip embeddings kept per identity (views, poses)"
    )
    prototype_novelty: float = Field(
        default=0.85, ge=-1, le=1, description="a clip less similar to every prototype is new"
    )
    threshold_mode: ThresholdMode = Field(
        default=ThresholdMode.QUANTILE, description="quantile: learn from negatives"
    )
    negative_quantile: float = Field(default=0.95, gt=0, lt=1)
    min_negatives: int = Field(default=30, ge=1, description="before the quantile is used")
    reassociation_seconds: float = Field(
        default=0.0,
        ge=0,
        description="same camera: a new track may continue one ended this recently",
    )
    reassociation_distance: float = Field(
        default=1.5, gt=0, description="…starting within this many box heights of its end"
    )
    reassociation_similarity: float = Field(default=0.45, ge=-1, le=1)
    topology: list[TransitionWindow] = Field(default_factory=list)
    topology_mode: TopologyMode = TopologyMode.PENALIZE
    topology_penalty: float = Field(default=0.15, ge=0)
    split_simultaneous: bool = Field(
        default=True, description="split off a track seen at the same time as its identity"
    )
    split_similarity: float = Field(
        default=0.3, ge=-1, le=1, description="a clip below this fits its identity badly; -1: off"
    )
    split_patience_clips: int = Field(
        default=3, ge=1, description="consecutive bad clips before the track is split off"
    )
    max_tracks_per_identity: int = Field(
        default=64,
        ge=2,
        description="ended tracks beyond this many (oldest first) are forgotten by a long-lived "
        "identity, so its memory stays bounded",
    )


class HomographyConfig(StrictModel):
    """How view-to-view homographies are learned (``pipeline/identity/homography.py``)."""

    min_common_seconds: float = Field(
        default=1.0, gt=0, description="two tracks both visible this long are a candidate pair"
    )
    tolerance_heights: float = Field(
        default=0.15, gt=0, description="RANSAC tolerance, in median person heights"
    )
    min_inliers: int = Field(default=30, ge=4, description="fewer: the views do not overlap")
    min_track_pairs: int = Field(default=3, ge=1, description="…from at least this many pairs")
    appearance_significance: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="a fit on half the footage pairs people of the other half who look alike "
        "beyond chance at this level",
    )
    max_points_per_pair: int = Field(default=40, ge=1, description="correspondences per pair")
    rounds: int = Field(default=3, ge=1, description="fit, re-select pairs by geometry, refit")


class IdentityConfig(StrictModel):
    """Identities decided over whole tracks (``pipeline/identity/refine.py``): learned
    geometry, same-camera continuity and constrained clustering. Lengths are in person
    heights, times in seconds; how each default was chosen is in the README."""

    refine_at_end: bool = Field(
        default=True, description="an end-of-run pass over whole tracks; into outputs.save_mtmc"
    )
    refine_every_seconds: float = Field(
        default=10.0, ge=0, description="re-cluster the recent window this often; 0: never"
    )
    window_seconds: float = Field(
        default=300.0, gt=0, description="the recent footage re-clustered online"
    )
    passes_in_background: bool = Field(
        default=True,
        description="online passes run in a worker process while matching goes on (false: "
        "inline, each pass stalls the loop; reproducible event order for tests)",
    )
    calibration: Path | None = Field(
        default=None, description="a calibration file from `crosscam calibrate` (else learned)"
    )
    learn_geometry: bool = Field(
        default=True, description="learn view homographies from the footage where not given"
    )
    relearn_geometry_seconds: float = Field(
        default=60.0, gt=0, description="online passes learn them again this often (footage)"
    )
    min_boxes: int = Field(default=3, ge=1, description="shorter tracks are left out")
    min_common_samples: int = Field(default=5, ge=1, description="before geometry decides")
    match_heights: float = Field(default=0.35, gt=0, description="feet this close: same place")
    nearest_fraction: float = Field(
        default=0.6, gt=0, le=1, description="…and each the other's nearest this often"
    )
    conflict_heights: float = Field(
        default=1.0, gt=0, description="feet this far apart at the same time: two people"
    )
    continuity_seconds: float = Field(
        default=2.0, ge=0, description="same camera: a track starting this soon after another…"
    )
    continuity_heights: float = Field(
        default=1.0, ge=0, description="…this near where it ended continues it"
    )
    overlap_tolerance_seconds: float = Field(
        default=0.3, ge=0, description="same camera: overlapping longer = two people"
    )
    duplicate_iou: float = Field(
        default=0.5, gt=0, le=1, description="same camera: boxes overlapping this much are one"
    )
    cut_encounters: bool = Field(
        default=True, description="cut tracks where one camera's boxes met; pair pieces again"
    )
    encounter_iou: float = Field(
        default=0.2, gt=0, le=1, description="boxes overlapping this much met (tracker's IoU)"
    )
    cut_swaps: bool = Field(
        default=True, description="cut tracks where an overlapping view shows a swap"
    )
    swap_min_seconds: float = Field(
        default=1.0, gt=0, description="a partner in the other view for at least this long"
    )
    swap_proximity_heights: float = Field(
        default=1.0, gt=0, description="…and a neighbour this close: the tracker may swap"
    )
    center_cameras: bool = Field(
        default=True, description="remove each camera's mean embedding before comparing"
    )
    move_pieces: bool = Field(
        default=True,
        description="after clustering, move pieces to the cluster they fit best, then merge "
        "again (the same objective the merges follow)",
    )
    threshold: float | None = Field(
        default=None, ge=-1, le=1, description="appearance merge threshold; null: from the run"
    )
    negative_quantile: float = Field(
        default=0.95, gt=0, lt=1, description="fallback threshold: this quantile of negatives"
    )
    min_positives: int = Field(default=10, ge=1, description="fewer: the fallback is used")
    homography: HomographyConfig = Field(default_factory=HomographyConfig)


class RedisConfig(StrictModel):
    """Where events go. ``url`` empty means an embedded Redis under the run folder."""

    url: str = ""
    stream: str = "crosscam:events"
    clip_stream: str = Field(
        default="crosscam:clips", description="edges → matchers (--role edge / matcher)"
    )
    key_prefix: str = "crosscam"
    stream_max_length: int = Field(default=100_000, ge=1)
    buffer_max_events: int = Field(
        default=100_000, ge=1, description="kept in memory while Redis is down (no spool)"
    )
    spool_directory: Path | None = Field(
        default=None, description="on-disk event spool; default <outputs.run_directory>/spool"
    )
    spool_max_megabytes: float = Field(default=512.0, gt=0)
    restore_identities: bool = Field(
        default=True, description="continue the gallery stored in Redis (run.py --fresh: no)"
    )


class OutputsConfig(StrictModel):
    """Files a run writes besides Redis."""

    run_directory: Path = Field(
        default=PROJECT_ROOT / "runs",
        description="runs/<run id>/, the embedded Redis and the spool; default <project>/runs",
    )
    save_mtmc: Path | None = None
    save_track_log: Path | None = Field(
        default=None, description="every track's boxes and clip embeddings (.npz), for analysis"
    )
    save_video: Path | None = None
    status_interval_seconds: float = Field(default=1.0, gt=0)


class MetricsConfig(StrictModel):
    """Prometheus ``/metrics`` and ``/healthz`` (``pipeline/metrics.py``)."""

    enabled: bool = True
    host: str = Field(default="127.0.0.1", description="bind address; 0.0.0.0 exposes it")
    port: int = Field(default=9464, ge=0, le=65535, description="0: any free port")
    liveness_seconds: float = Field(
        default=30.0, gt=0, description="not live when the loop has not ticked for this long"
    )


class StagesConfig(StrictModel):
    """How the stages of the loop run (``pipeline/runner.py``, ``pipeline/stages.py``)."""

    pipelined: bool = Field(
        default=True,
        description="detect the next batch while the loop handles the previous; false: serial",
    )
    detect_ahead_batches: int = Field(
        default=2, ge=1, description="detected batches waiting for the loop, at most"
    )
    publish_async: bool = Field(
        default=True,
        description="publish to Redis on a thread of its own (pipeline/publish_thread.py)",
    )
    publish_queue_batches: int = Field(
        default=1024, ge=1, description="batches of events waiting for that thread, at most"
    )


class CrosscamConfig(StrictModel):
    """The whole configuration of one crosscam run."""

    cameras: list[CameraConfig] = Field(default_factory=list)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    clips: ClipsConfig = Field(default_factory=ClipsConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    matching: MatchingConfig = Field(default_factory=MatchingConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    stages: StagesConfig = Field(default_factory=StagesConfig)
    secrets_file: Path | None = Field(
        default=None, description="KEY=VALUE lines for ${KEY} in URIs (environment wins)"
    )
    max_seconds: float | None = Field(default=None, gt=0, description="stop after this long")

    @field_validator("cameras")
    @classmethod
    def _unique_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        ids = [camera.id for camera in cameras]
        duplicated = sorted({camera_id for camera_id in ids if ids.count(camera_id) > 1})
        if duplicated:
            raise ValueError(f"camera ids must be unique, repeated: {duplicated}")
        return cameras


def load_config(
    path: Path | str, overrides: list[str] | None = None, require_cameras: bool = True
) -> CrosscamConfig:
    """Parse a YAML file and ``key.path=value`` overrides into a :class:`CrosscamConfig`.

    Raises:
        ConfigError: missing or unreadable file, bad YAML, bad override, unknown key, wrong
            type, or a referenced file that does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass --streams path/to/cams.yaml)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({error.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with a 'cameras' list")
    raw = {key: value for key, value in raw.items() if value is not None}  # empty section
    for override in overrides or []:
        apply_override(raw, override)
    expand_secrets(raw, path)
    try:
        config = CrosscamConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {describe_validation_error(error)}") from None
    if require_cameras and not config.cameras:
        raise ConfigError(f"{path}: no cameras: add a 'cameras' list (see configs/demo.yaml)")
    resolve_paths(config, path.parent)
    return config


def expand_secrets(raw: dict[str, Any], path: Path) -> None:
    """Replace ``${NAME}`` in camera URIs and ``redis.url`` with the environment variable NAME,
    else with NAME from ``secrets_file`` (``KEY=VALUE`` lines, relative to the YAML).

    The expanded URIs hold credentials: they are only ever logged through
    :func:`pipeline.redaction.redact_url`. Errors name the variable, never its value.
    """
    secrets: dict[str, str] = {}
    secrets_file = raw.get("secrets_file")
    if secrets_file:
        secrets_path = _absolute(Path(str(secrets_file)), path.parent)
        try:
            lines = secrets_path.read_text().splitlines()
        except OSError as error:
            raise ConfigError(
                f"secrets_file: cannot read {secrets_path} ({error.strerror})"
            ) from None
        for line in lines:
            key, separator, value = line.strip().partition("=")
            if separator and not key.startswith("#"):
                secrets[key.strip()] = value.strip()
    cameras = raw.get("cameras")
    targets: list[tuple[str, dict[str, Any], str]] = []
    if isinstance(cameras, list):
        targets += [
            (f"cameras.{index}.uri", camera, "uri")
            for index, camera in enumerate(cameras)
            if isinstance(camera, dict)
        ]
    if isinstance(raw.get("redis"), dict):
        targets.append(("redis.url", raw["redis"], "url"))
    for location, section, key in targets:
        template = section.get(key)
        if not isinstance(template, str) or "${" not in template:
            continue
        for name in _SECRET_REFERENCE.findall(template):
            known: str | None = os.environ.get(name)
            if known is None:
                known = secrets.get(name)
            if known is None:
                raise ConfigError(
                    f"{path}: {location}: ${{{name}}} is not set (export {name}=… or add it "
                    "to the secrets_file)"
                )
            template = template.replace(f"${{{name}}}", known)
        section[key] = template


_SECRET_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in a raw config mapping; the value is parsed as YAML.

    List items are addressed by index: ``cameras.0.fps_cap=5``.
    """
    key_path, separator, text = override.partition("=")
    if not separator or not key_path:
        raise ConfigError(f"--set {override!r}: expected key.path=value, e.g. encoder.model=tp")
    value = yaml.safe_load(text) if text else ""
    keys = key_path.split(".")
    node: Any = raw
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"--set {key_path}: no list item {key!r} (have {len(node)})")
            if last:
                node[int(key)] = value
            else:
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
        else:
            parent = ".".join(keys[:depth])
            raise ConfigError(f"--set {key_path}: {parent} is a value, not a section")


def describe_validation_error(error: ValidationError) -> str:
    """One line naming the first offending key and what is wrong with it."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"unknown key '{location}' (check its spelling; see configs/demo.yaml)"
    if first["type"] == "missing":
        return f"missing required key '{location}'"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"key '{location}': {first['msg']}, got {first.get('input')!r}{more}"


def resolve_paths(config: CrosscamConfig, base: Path) -> None:
    """Make relative paths absolute against ``base`` and check that input files exist."""
    for index, camera in enumerate(config.cameras):
        if camera.is_file:
            video = _absolute(Path(camera.uri), base)
            if not video.is_file():
                raise ConfigError(f"cameras.{index}.uri: video file not found: {video}")
            camera.uri = str(video)
    config.detector.weights = _absolute(config.detector.weights, base)
    if not config.detector.weights.is_file():
        raise ConfigError(f"detector.weights: file not found: {config.detector.weights}")
    if config.encoder.weights is not None:
        config.encoder.weights = _absolute(config.encoder.weights, base)
        if not config.encoder.weights.is_file():
            raise ConfigError(f"encoder.weights: file not found: {config.encoder.weights}")
    outputs = config.outputs
    outputs.run_directory = _absolute(outputs.run_directory, base)
    if config.redis.spool_directory is not None:
        config.redis.spool_directory = _absolute(config.redis.spool_directory, base)
    if outputs.save_mtmc is not None:
        outputs.save_mtmc = _absolute(outputs.save_mtmc, base)
    if config.identity.calibration is not None:
        config.identity.calibration = _absolute(config.identity.calibration, base)
        if not config.identity.calibration.is_file():
            raise ConfigError(
                f"identity.calibration: file not found: {config.identity.calibration} (write "
                f"one with: crosscam calibrate --streams {base / 'cams.yaml'})"
            )
    if outputs.save_track_log is not None:
        outputs.save_track_log = _absolute(outputs.save_track_log, base)
    if outputs.save_video is not None:
        outputs.save_video = _absolute(outputs.save_video, base)


def _absolute(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).resolve()
