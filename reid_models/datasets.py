"""Video ReID datasets in their published layouts, a clip dataset and a PK identity sampler.

Loaders return a :class:`VideoReidSplit` of :class:`Tracklet` records (ordered image paths,
identity, camera):

- :func:`load_mars`: ``root/{bbox_train,bbox_test}/<pid>/<name>.jpg`` and ``root/info/``
  (``train_name.txt``, ``test_name.txt``, ``tracks_train_info.mat``, ``tracks_test_info.mat``,
  ``query_IDX.mat``, from the MARS-evaluation kit). Junk tracklets (identity -1) are dropped;
  distractors (identity 0) stay in the gallery; query tracklets are not repeated in the gallery
  (torchreid's convention).
- :func:`load_ilids_vid`: ``root/i-LIDS-VID/sequences/cam{1,2}/personNNN/*.png`` and
  ``root/train-test people splits/train_test_splits_ilidsvid.mat`` (``ls_set``: one row per
  split of 1-based indices into the sorted person folders; first half test, second half train,
  as in Wang et al. ECCV 2014). Query: camera 1; gallery: camera 2.
- :func:`load_prid2011`: ``root/prid_2011/multi_shot/cam_{a,b}/person_NNNN/*.png`` with a
  torchreid-style split file (``[{"train": [dirs], "test": [dirs]}, ...]``); without one, splits
  are drawn (seeded) from the first 200 persons, those with at least ``min_frames`` frames in
  both cameras. Query: camera a; gallery: camera b.
- :func:`load_tracklet_index`: crosscam's own tracklets, from an index JSON or CSV (format in
  its docstring).

Training identities are relabelled to ``0 .. n-1``; query/gallery keep the dataset's own ids.
:class:`VideoClipDataset` turns tracklets into clips through
:func:`reid_models.sampling.sample_clip_indices`; :class:`IdentityBalancedSampler` draws PK
batches (P identities x K tracklets).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from scipy.io import loadmat
from torch.utils.data import Dataset, Sampler, get_worker_info

from reid_models.contract import INPUT_HEIGHT, INPUT_WIDTH
from reid_models.sampling import SamplingMode, sample_clip_indices

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
PRID2011_SHARED_PERSONS = 200


@dataclass(frozen=True)
class Tracklet:
    """One person seen by one camera over consecutive frames.

    Attributes:
        image_paths: crop files in temporal order (at least one).
        identity: person label (relabelled ``0 .. n-1`` in training splits).
        camera: camera label, ``0``-based.
    """

    image_paths: tuple[Path, ...]
    identity: int
    camera: int


@dataclass(frozen=True)
class VideoReidSplit:
    """Train / query / gallery tracklets of one dataset split."""

    train: tuple[Tracklet, ...]
    query: tuple[Tracklet, ...]
    gallery: tuple[Tracklet, ...]

    @property
    def train_identity_count(self) -> int:
        return len({tracklet.identity for tracklet in self.train})


def relabel_identities(tracklets: Sequence[Tracklet]) -> tuple[Tracklet, ...]:
    """Map identities to ``0 .. n-1`` in increasing order of the original labels."""
    labels = {
        identity: label for label, identity in enumerate(sorted({t.identity for t in tracklets}))
    }
    return tuple(replace(tracklet, identity=labels[tracklet.identity]) for tracklet in tracklets)


def _image_files(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES))


def _require(paths: Sequence[Path]) -> None:
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise FileNotFoundError(f"missing dataset files: {', '.join(missing)}")


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _mars_tracklets(
    root: Path, folder: str, names: list[str], track_info: np.ndarray
) -> list[Tracklet]:
    tracklets = []
    for start, end, identity, camera in np.asarray(track_info, dtype=np.int64).reshape(-1, 4):
        if identity == -1:
            continue
        tracklet_names = names[start - 1 : end]
        if not tracklet_names:
            raise ValueError(f"MARS: empty tracklet {start}..{end} in {folder}")
        if len({name[:4] for name in tracklet_names}) != 1:
            raise ValueError(f"MARS: tracklet {start}..{end} mixes identities")
        paths = tuple(root / folder / name[:4] / name for name in tracklet_names)
        tracklets.append(Tracklet(paths, int(identity), int(camera) - 1))
    return tracklets


def load_mars(root: Path) -> VideoReidSplit:
    """MARS (Zheng et al., ECCV 2016) from its published layout (see the module docstring)."""
    root = Path(root)
    info = root / "info"
    files = {
        "train_names": info / "train_name.txt",
        "test_names": info / "test_name.txt",
        "train_tracks": info / "tracks_train_info.mat",
        "test_tracks": info / "tracks_test_info.mat",
        "query_index": info / "query_IDX.mat",
    }
    _require([root / "bbox_train", root / "bbox_test", *files.values()])
    train_info = loadmat(files["train_tracks"])["track_train_info"]
    test_info = np.asarray(loadmat(files["test_tracks"])["track_test_info"]).reshape(-1, 4)
    query_rows = np.asarray(loadmat(files["query_index"])["query_IDX"]).reshape(-1) - 1
    gallery_rows = np.setdiff1d(np.arange(test_info.shape[0]), query_rows)
    test_names = _read_lines(files["test_names"])
    train = _mars_tracklets(root, "bbox_train", _read_lines(files["train_names"]), train_info)
    query = _mars_tracklets(root, "bbox_test", test_names, test_info[query_rows])
    gallery = _mars_tracklets(root, "bbox_test", test_names, test_info[gallery_rows])
    logger.info("MARS: %d train, %d query, %d gallery", len(train), len(query), len(gallery))
    return VideoReidSplit(relabel_identities(train), tuple(query), tuple(gallery))


def _person_number(folder_name: str) -> int:
    digits = re.findall(r"\d+", folder_name)
    if not digits:
        raise ValueError(f"no person number in folder name {folder_name!r}")
    return int(digits[-1])


def _two_camera_split(
    camera_folders: tuple[Path, Path], train_persons: Sequence[str], test_persons: Sequence[str]
) -> VideoReidSplit:
    def tracklets(persons: Sequence[str], cameras: Sequence[int]) -> list[Tracklet]:
        result = []
        for person in persons:
            for camera in cameras:
                paths = _image_files(camera_folders[camera] / person)
                if not paths:
                    raise ValueError(f"no images in {camera_folders[camera] / person}")
                result.append(Tracklet(paths, _person_number(person), camera))
        return result

    return VideoReidSplit(
        train=relabel_identities(tracklets(train_persons, (0, 1))),
        query=tuple(tracklets(test_persons, (0,))),
        gallery=tuple(tracklets(test_persons, (1,))),
    )


def load_ilids_vid(root: Path, split_index: int = 0) -> VideoReidSplit:
    """iLIDS-VID (Wang et al., ECCV 2014), one of the 10 published splits."""
    root = Path(root)
    sequences = root / "i-LIDS-VID" / "sequences"
    split_file = root / "train-test people splits" / "train_test_splits_ilidsvid.mat"
    _require([sequences / "cam1", sequences / "cam2", split_file])
    persons = sorted(path.name for path in (sequences / "cam1").iterdir() if path.is_dir())
    splits = np.asarray(loadmat(split_file)["ls_set"], dtype=np.int64)
    if not 0 <= split_index < splits.shape[0]:
        raise ValueError(f"split_index must be in [0, {splits.shape[0]}), got {split_index}")
    row = splits[split_index]
    half = row.size // 2
    test_persons = [persons[index - 1] for index in sorted(row[:half])]
    train_persons = [persons[index - 1] for index in sorted(row[half:])]
    return _two_camera_split((sequences / "cam1", sequences / "cam2"), train_persons, test_persons)


def prid2011_splits(
    root: Path, split_count: int = 10, min_frames: int = 22, seed: int = 0
) -> list[dict[str, list[str]]]:
    """Random half/half splits of PRID2011's shared persons, when no split file is at hand.

    Persons ``person_0001 .. person_0200`` appear in both cameras; those with at least
    ``min_frames`` frames in each camera are kept (the common protocol keeps sequences of more
    than 21 frames, 178 persons) and halved into train and test, ``split_count`` times.
    """
    multi_shot = Path(root) / "prid_2011" / "multi_shot"
    eligible = []
    for number in range(1, PRID2011_SHARED_PERSONS + 1):
        person = f"person_{number:04d}"
        folders = [multi_shot / "cam_a" / person, multi_shot / "cam_b" / person]
        if all(folder.is_dir() and len(_image_files(folder)) >= min_frames for folder in folders):
            eligible.append(person)
    if len(eligible) < 2:
        raise ValueError(f"PRID2011: only {len(eligible)} persons with >= {min_frames} frames")
    generator = np.random.default_rng(seed)
    splits = []
    for _ in range(split_count):
        order = generator.permutation(len(eligible))
        half = len(eligible) // 2
        splits.append(
            {
                "train": sorted(eligible[index] for index in order[:half]),
                "test": sorted(eligible[index] for index in order[half:]),
            }
        )
    return splits


def load_prid2011(
    root: Path, split_index: int = 0, splits_path: Path | None = None, min_frames: int = 22
) -> VideoReidSplit:
    """PRID2011 multi-shot (Hirzer et al., SCIA 2011).

    Args:
        root: folder holding ``prid_2011/multi_shot``.
        split_index: which split to use.
        splits_path: torchreid-style JSON split file; ``None`` uses
            ``root/splits_prid2011.json`` when present, else :func:`prid2011_splits`.
        min_frames: frame threshold for generated splits.
    """
    root = Path(root)
    multi_shot = root / "prid_2011" / "multi_shot"
    _require([multi_shot / "cam_a", multi_shot / "cam_b"])
    if splits_path is None and (root / "splits_prid2011.json").exists():
        splits_path = root / "splits_prid2011.json"
    if splits_path is not None:
        splits = json.loads(Path(splits_path).read_text())
    else:
        logger.warning("PRID2011: no split file, drawing splits with seed 0")
        splits = prid2011_splits(root, min_frames=min_frames)
    if not 0 <= split_index < len(splits):
        raise ValueError(f"split_index must be in [0, {len(splits)}), got {split_index}")
    split = splits[split_index]
    return _two_camera_split(
        (multi_shot / "cam_a", multi_shot / "cam_b"), split["train"], split["test"]
    )


def _label_codes(values: Sequence[Any]) -> dict[str, int]:
    """Integer codes for labels: integers (or digit strings) keep their value; otherwise the
    labels are numbered in sorted order."""
    texts = sorted({str(value) for value in values})
    if all(re.fullmatch(r"-?\d+", text) for text in texts):
        return {text: int(text) for text in texts}
    return {text: code for code, text in enumerate(texts)}


def load_tracklet_index(path: Path) -> VideoReidSplit:
    """Tracklets listed in an index file written by crosscam's miner.

    JSON: ``{"tracklets": [...]}`` or a bare list; each entry
    ``{"identity": 3, "camera": "cam0", "images": ["crops/a.jpg", ...], "split": "train"}``.
    CSV: a header with ``tracklet,identity,camera,image`` (and optionally ``split``), one row per
    crop in temporal order; rows sharing a ``tracklet`` value form one tracklet.

    Image paths are relative to the index file's folder (absolute paths are kept). ``split`` is
    ``train`` (the default), ``query`` or ``gallery``; ``test`` entries (the miner's
    later-in-time split) are held out and skipped. Identity and camera labels may be
    integers or strings (strings are numbered in sorted order).
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        loaded = json.loads(path.read_text())
        entries = loaded["tracklets"] if isinstance(loaded, dict) else loaded
    elif path.suffix.lower() == ".csv":
        entries = _csv_entries(path)
    else:
        raise ValueError(f"tracklet index must be .json or .csv, got {path}")
    identity_codes = _label_codes([entry["identity"] for entry in entries])
    camera_codes = _label_codes([entry["camera"] for entry in entries])
    groups: dict[str, list[Tracklet]] = {"train": [], "query": [], "gallery": []}
    for entry in entries:
        split = str(entry.get("split", "train"))
        if split == "test":
            continue
        if split not in groups:
            raise ValueError(f"{path}: unknown split {split!r}")
        images = tuple(path.parent / image for image in entry["images"])
        if not images:
            raise ValueError(f"{path}: tracklet without images")
        groups[split].append(
            Tracklet(
                images,
                identity_codes[str(entry["identity"])],
                camera_codes[str(entry["camera"])],
            )
        )
    return VideoReidSplit(
        relabel_identities(groups["train"]), tuple(groups["query"]), tuple(groups["gallery"])
    )


def _csv_entries(path: Path) -> list[dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        required = {"tracklet", "identity", "camera", "image"}
        if reader.fieldnames is None or not required <= set(reader.fieldnames):
            raise ValueError(f"{path}: CSV header must contain {sorted(required)}")
        for row in reader:
            entry = entries.setdefault(
                row["tracklet"],
                {
                    "identity": row["identity"],
                    "camera": row["camera"],
                    "split": row.get("split") or "train",
                    "images": [],
                },
            )
            entry["images"].append(row["image"])
    return list(entries.values())


def read_rgb_image(path: Path, image_size: tuple[int, int]) -> np.ndarray:
    """Read a crop, resize it, and return float32 ``(3, H, W)`` RGB in ``[0, 1]``.

    Args:
        path: image file (any format OpenCV reads).
        image_size: ``(H, W)`` after bilinear resizing.
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    height, width = image_size
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0


class VideoClipDataset(Dataset[tuple[torch.Tensor, int, int]]):
    """Clips of tracklets, one per tracklet per epoch.

    Item ``i`` is ``(clip, identity, camera)``: ``clip`` float32 ``(T, 3, H, W)`` RGB in
    ``[0, 1]`` (the input contract of ``reid_models.contract``, without the batch axis),
    frames chosen by :func:`reid_models.sampling.sample_clip_indices`. In ``all`` mode ``T``
    varies per tracklet (batch size 1 then).

    Args:
        tracklets: the tracklets.
        clip_length: frames per clip ``T``.
        mode: sampling mode (``chunks`` for DRSTA training, ``random``/``evenly`` otherwise).
        image_size: ``(H, W)`` crops are resized to.
        seed: random source for ``random``/``chunks``; every DataLoader worker derives its own
            stream from it and the worker's torch seed (which changes every epoch).
    """

    def __init__(
        self,
        tracklets: Sequence[Tracklet],
        clip_length: int,
        mode: SamplingMode | str = SamplingMode.EVENLY,
        image_size: tuple[int, int] = (INPUT_HEIGHT, INPUT_WIDTH),
        seed: int = 0,
    ) -> None:
        self.tracklets = tuple(tracklets)
        self.clip_length = clip_length
        self.mode = SamplingMode(mode)
        self.image_size = image_size
        self.seed = seed
        self._generator = np.random.default_rng(seed)
        self._worker_seed: int | None = None

    @property
    def identities(self) -> list[int]:
        """Identity of every item, for :class:`IdentityBalancedSampler`."""
        return [tracklet.identity for tracklet in self.tracklets]

    def __len__(self) -> int:
        return len(self.tracklets)

    def _random_source(self) -> np.random.Generator | None:
        if self.mode in (SamplingMode.EVENLY, SamplingMode.ALL):
            return None
        worker = get_worker_info()
        if worker is not None and worker.seed != self._worker_seed:
            self._worker_seed = worker.seed
            self._generator = np.random.default_rng([self.seed, worker.seed])
        return self._generator

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        tracklet = self.tracklets[index]
        frame_indices = sample_clip_indices(
            len(tracklet.image_paths), self.clip_length, self.mode, self._random_source()
        )
        frames = [
            read_rgb_image(tracklet.image_paths[frame_index], self.image_size)
            for frame_index in frame_indices
        ]
        return torch.from_numpy(np.stack(frames)), tracklet.identity, tracklet.camera


class IdentityBalancedSampler(Sampler[int]):
    """PK sampler: every consecutive ``P * K`` indices are ``K`` tracklets of ``P`` identities.

    Use with ``DataLoader(batch_size=sampler.batch_size, drop_last=True)``. Per epoch, each
    identity's tracklets are shuffled and cut into groups of ``K`` (an identity with fewer than
    ``K`` tracklets is padded by drawing its own tracklets again; a last incomplete group is
    dropped); batches take one group from each of ``P`` identities drawn at random among those
    with groups left. The plan depends only on ``seed`` and the epoch, which advances after each
    full iteration (or is set with :meth:`set_epoch`).

    Args:
        identities: identity of every dataset item.
        identities_per_batch: ``P``.
        tracklets_per_identity: ``K``.
        seed: random seed.
    """

    def __init__(
        self,
        identities: Sequence[int],
        identities_per_batch: int,
        tracklets_per_identity: int,
        seed: int = 0,
    ) -> None:
        if identities_per_batch < 1 or tracklets_per_identity < 1:
            raise ValueError("identities_per_batch and tracklets_per_identity must be >= 1")
        self.identities = list(identities)
        self.identities_per_batch = identities_per_batch
        self.tracklets_per_identity = tracklets_per_identity
        self.seed = seed
        self.epoch = 0
        self._items_by_identity: dict[int, list[int]] = {}
        for item, identity in enumerate(self.identities):
            self._items_by_identity.setdefault(identity, []).append(item)
        if len(self._items_by_identity) < identities_per_batch:
            raise ValueError(
                f"{len(self._items_by_identity)} identities cannot fill batches of "
                f"{identities_per_batch} identities"
            )

    @property
    def batch_size(self) -> int:
        return self.identities_per_batch * self.tracklets_per_identity

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches (lists of ``P * K`` dataset indices) of ``epoch``."""
        generator = np.random.default_rng([self.seed, epoch])
        group_size = self.tracklets_per_identity
        groups: dict[int, list[list[int]]] = {}
        for identity, items in sorted(self._items_by_identity.items()):
            shuffled = [int(item) for item in generator.permutation(items)]
            if len(shuffled) < group_size:
                extra = generator.choice(items, size=group_size - len(shuffled), replace=True)
                shuffled.extend(int(item) for item in extra)
            groups[identity] = [
                shuffled[start : start + group_size]
                for start in range(0, len(shuffled) - group_size + 1, group_size)
            ]
        batches = []
        available = sorted(groups)
        while len(available) >= self.identities_per_batch:
            chosen = generator.choice(len(available), size=self.identities_per_batch, replace=False)
            batch = []
            for position in sorted(chosen):
                batch.extend(groups[available[position]].pop())
            batches.append(batch)
            available = [identity for identity in available if groups[identity]]
        return batches

    def __iter__(self) -> Iterator[int]:
        batches = self.batches(self.epoch)
        self.epoch += 1
        for batch in batches:
            yield from batch

    def __len__(self) -> int:
        return len(self.batches(self.epoch)) * self.batch_size
