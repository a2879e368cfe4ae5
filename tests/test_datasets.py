"""Dataset loaders on tiny fixture trees in the published layouts, clips and the PK sampler."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.io import savemat
from torch.utils.data import DataLoader

from reid_models.datasets import (
    IdentityBalancedSampler,
    Tracklet,
    VideoClipDataset,
    load_ilids_vid,
    load_mars,
    load_prid2011,
    load_tracklet_index,
    prid2011_splits,
    read_rgb_image,
    relabel_identities,
)
from reid_models.sampling import sample_clip_indices


def write_image(path: Path, value: int = 128, size: tuple[int, int] = (8, 4)) -> Path:
    """A small grey BGR image whose pixels all equal ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((*size, 3), value, dtype=np.uint8))
    return path


def write_frames(folder: Path, prefix: str, count: int, suffix: str = ".png") -> None:
    for frame in range(1, count + 1):
        write_image(folder / f"{prefix}{frame:05d}{suffix}", value=10 * frame)


# MARS ---------------------------------------------------------------------------------------


def mars_names(identity: str, camera: int, tracklet: int, frames: int) -> list[str]:
    return [f"{identity}C{camera}T{tracklet:04d}F{frame:03d}.jpg" for frame in range(1, frames + 1)]


@pytest.fixture
def mars_root(tmp_path: Path) -> Path:
    root = tmp_path / "mars"
    train_tracks = [("0001", 1, 1, 3), ("0001", 2, 1, 2), ("0003", 2, 1, 2)]
    test_tracks = [("0002", 1, 1, 2), ("0002", 3, 1, 3), ("0000", 4, 1, 2), ("00-1", 5, 1, 1)]
    for folder, tracks, names_file, info_file, key in (
        ("bbox_train", train_tracks, "train_name.txt", "tracks_train_info.mat", "track_train_info"),
        ("bbox_test", test_tracks, "test_name.txt", "tracks_test_info.mat", "track_test_info"),
    ):
        names: list[str] = []
        rows = []
        for identity, camera, tracklet, frames in tracks:
            tracklet_names = mars_names(identity, camera, tracklet, frames)
            label = -1 if identity == "00-1" else int(identity)
            rows.append([len(names) + 1, len(names) + frames, label, camera])
            names.extend(tracklet_names)
            for name in tracklet_names:
                write_image(root / folder / identity / name)
        (root / "info").mkdir(parents=True, exist_ok=True)
        (root / "info" / names_file).write_text("\n".join(names) + "\n")
        savemat(str(root / "info" / info_file), {key: np.array(rows, dtype=np.float64)})
    savemat(str(root / "info" / "query_IDX.mat"), {"query_IDX": np.array([[1]])})
    return root


def test_mars_layout(mars_root: Path) -> None:
    split = load_mars(mars_root)
    assert [(t.identity, t.camera, len(t.image_paths)) for t in split.train] == [
        (0, 0, 3),
        (0, 1, 2),
        (1, 1, 2),
    ]
    assert split.train_identity_count == 2
    assert [(t.identity, t.camera) for t in split.query] == [(2, 0)]
    # Query tracklet not repeated; the distractor (identity 0) stays; junk (-1) is dropped.
    assert [(t.identity, t.camera) for t in split.gallery] == [(2, 2), (0, 3)]
    first = split.train[0].image_paths
    assert [path.name for path in first] == mars_names("0001", 1, 1, 3)
    assert all(path.exists() for tracklet in split.gallery for path in tracklet.image_paths)


def test_mars_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="bbox_train"):
        load_mars(tmp_path)


# iLIDS-VID ----------------------------------------------------------------------------------


def test_ilids_vid_layout(tmp_path: Path) -> None:
    sequences = tmp_path / "i-LIDS-VID" / "sequences"
    persons = ["person001", "person002", "person005", "person007"]
    for person in persons:
        for camera in ("cam1", "cam2"):
            write_frames(sequences / camera / person, f"{camera}_{person}_", 3)
    split_folder = tmp_path / "train-test people splits"
    split_folder.mkdir()
    # One row per split, 1-based indices into the sorted person folders; first half = test.
    savemat(
        str(split_folder / "train_test_splits_ilidsvid.mat"),
        {"ls_set": np.array([[3, 1, 4, 2], [2, 4, 1, 3]], dtype=np.float64)},
    )
    split = load_ilids_vid(tmp_path, split_index=0)
    assert sorted({t.identity for t in split.query}) == [1, 5]
    assert all(t.camera == 0 for t in split.query) and all(t.camera == 1 for t in split.gallery)
    assert [(t.identity, t.camera) for t in split.train] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    names = [path.name for path in split.query[0].image_paths]
    assert names == sorted(names) and len(names) == 3
    other = load_ilids_vid(tmp_path, split_index=1)
    assert sorted({t.identity for t in other.query}) == [2, 7]
    with pytest.raises(ValueError, match="split_index"):
        load_ilids_vid(tmp_path, split_index=2)


# PRID2011 -----------------------------------------------------------------------------------


@pytest.fixture
def prid_root(tmp_path: Path) -> Path:
    multi_shot = tmp_path / "prid_2011" / "multi_shot"
    frame_counts = {1: (3, 4), 2: (3, 3), 3: (2, 5), 4: (4, 3), 5: (3, 3)}
    for number, (count_a, count_b) in frame_counts.items():
        write_frames(multi_shot / "cam_a" / f"person_{number:04d}", "", count_a)
        write_frames(multi_shot / "cam_b" / f"person_{number:04d}", "", count_b)
    write_frames(multi_shot / "cam_a" / "person_0201", "", 5)
    return tmp_path


def test_prid2011_with_split_file(prid_root: Path) -> None:
    splits = [{"train": ["person_0001", "person_0004"], "test": ["person_0002", "person_0005"]}]
    (prid_root / "splits_prid2011.json").write_text(json.dumps(splits))
    split = load_prid2011(prid_root)
    assert [(t.identity, t.camera) for t in split.train] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [(t.identity, t.camera) for t in split.query] == [(2, 0), (5, 0)]
    assert [(t.identity, t.camera) for t in split.gallery] == [(2, 1), (5, 1)]
    assert len(split.train[0].image_paths) == 3 and len(split.train[1].image_paths) == 4


def test_prid2011_generated_splits_filter_short_sequences(prid_root: Path) -> None:
    splits = prid2011_splits(prid_root, split_count=3, min_frames=3)
    eligible = {"person_0001", "person_0002", "person_0004", "person_0005"}
    for split in splits:
        assert set(split["train"]) | set(split["test"]) == eligible
        assert not set(split["train"]) & set(split["test"])
        assert len(split["train"]) == 2
    assert splits == prid2011_splits(prid_root, split_count=3, min_frames=3)
    loaded = load_prid2011(prid_root, split_index=1, min_frames=3)
    assert len(loaded.query) == 2 and len(loaded.gallery) == 2


# Generic tracklet index ---------------------------------------------------------------------


def test_tracklet_index_json(tmp_path: Path) -> None:
    for name in ("a0", "a1", "b0", "c0"):
        write_image(tmp_path / "crops" / f"{name}.jpg")
    index = {
        "tracklets": [
            {"identity": 17, "camera": "lobby", "images": ["crops/a0.jpg", "crops/a1.jpg"]},
            {"identity": 42, "camera": "door", "images": ["crops/b0.jpg"]},
            {"identity": 17, "camera": "door", "images": ["crops/c0.jpg"], "split": "query"},
        ]
    }
    path = tmp_path / "index.json"
    path.write_text(json.dumps(index))
    split = load_tracklet_index(path)
    # Train identities relabelled; cameras numbered in sorted order of their names.
    assert [(t.identity, t.camera) for t in split.train] == [(0, 1), (1, 0)]
    assert split.train[0].image_paths == (tmp_path / "crops/a0.jpg", tmp_path / "crops/a1.jpg")
    assert [(t.identity, t.camera) for t in split.query] == [(17, 0)]
    assert split.gallery == ()


def test_tracklet_index_csv(tmp_path: Path) -> None:
    path = tmp_path / "index.csv"
    rows = [
        ("t1", "3", "0", "x/1.png", "gallery"),
        ("t2", "4", "1", "x/2.png", "train"),
        ("t1", "3", "0", "x/3.png", "gallery"),
    ]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tracklet", "identity", "camera", "image", "split"])
        writer.writerows(rows)
    split = load_tracklet_index(path)
    assert len(split.gallery) == 1
    assert split.gallery[0].image_paths == (tmp_path / "x/1.png", tmp_path / "x/3.png")
    assert (split.gallery[0].identity, split.gallery[0].camera) == (3, 0)
    assert [(t.identity, t.camera) for t in split.train] == [(0, 1)]


def test_tracklet_index_rejects_bad_input(tmp_path: Path) -> None:
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("identity,image\n1,a.png\n")
    with pytest.raises(ValueError, match="header"):
        load_tracklet_index(bad_header)
    with pytest.raises(ValueError, match=r"json or \.csv"):
        load_tracklet_index(tmp_path / "index.txt")
    bad_split = tmp_path / "split.json"
    bad_split.write_text(json.dumps([{"identity": 1, "camera": 0, "images": ["a"], "split": "x"}]))
    with pytest.raises(ValueError, match="unknown split"):
        load_tracklet_index(bad_split)


def test_relabel_identities_sorted() -> None:
    tracklets = [Tracklet((Path("a"),), 9, 0), Tracklet((Path("b"),), 2, 1)]
    assert [t.identity for t in relabel_identities(tracklets)] == [1, 0]


# Clips --------------------------------------------------------------------------------------


def test_read_rgb_image_order_range_and_size(tmp_path: Path) -> None:
    path = tmp_path / "red.png"
    bgr_red = np.zeros((10, 6, 3), dtype=np.uint8)
    bgr_red[..., 2] = 255
    cv2.imwrite(str(path), bgr_red)
    image = read_rgb_image(path, (16, 8))
    assert image.shape == (3, 16, 8) and image.dtype == np.float32
    np.testing.assert_allclose(image[0], 1.0)
    np.testing.assert_allclose(image[1:], 0.0)
    with pytest.raises(OSError):
        read_rgb_image(tmp_path / "missing.png", (16, 8))


def frame_tracklet(folder: Path, frame_count: int, identity: int = 0) -> Tracklet:
    """A tracklet whose frame ``k`` is uniformly grey with value ``10 * (k + 1)``."""
    write_frames(folder, "f", frame_count)
    return Tracklet(tuple(sorted(folder.iterdir())), identity, 0)


def test_clip_dataset_follows_the_shared_sampling(tmp_path: Path) -> None:
    tracklet = frame_tracklet(tmp_path / "t", frame_count=10, identity=3)
    dataset = VideoClipDataset([tracklet], clip_length=4, mode="evenly", image_size=(8, 4))
    clip, identity, camera = dataset[0]
    assert clip.shape == (4, 3, 8, 4) and clip.dtype == torch.float32
    assert (identity, camera) == (3, 0)
    frame_values = torch.round(clip[:, 0, 0, 0] * 255 / 10).long() - 1
    expected = torch.from_numpy(sample_clip_indices(10, 4, "evenly"))
    assert torch.equal(frame_values, expected)
    assert float(clip.min()) >= 0.0 and float(clip.max()) <= 1.0


def test_clip_dataset_chunks_is_seeded_and_within_chunks(tmp_path: Path) -> None:
    tracklet = frame_tracklet(tmp_path / "t", frame_count=12)
    first = VideoClipDataset([tracklet], 4, mode="chunks", image_size=(8, 4), seed=5)
    second = VideoClipDataset([tracklet], 4, mode="chunks", image_size=(8, 4), seed=5)
    draws = [torch.round(first[0][0][:, 0, 0, 0] * 25.5).long() - 1 for _ in range(5)]
    assert torch.equal(draws[0], torch.round(second[0][0][:, 0, 0, 0] * 25.5).long() - 1)
    for frames in draws:
        # Four chunks of three frames: one index from each.
        assert torch.equal(frames // 3, torch.arange(4))


def test_short_tracklet_repeats_frames(tmp_path: Path) -> None:
    tracklet = frame_tracklet(tmp_path / "t", frame_count=2)
    clip, _, _ = VideoClipDataset([tracklet], 5, mode="random", image_size=(8, 4))[0]
    assert clip.shape[0] == 5


# PK sampler ---------------------------------------------------------------------------------


def test_identity_balanced_sampler_batches() -> None:
    identities = [0] * 5 + [1] * 2 + [2] * 1 + [3] * 4 + [4] * 3
    sampler = IdentityBalancedSampler(identities, identities_per_batch=2, tracklets_per_identity=2)
    assert sampler.batch_size == 4
    batches = sampler.batches(epoch=0)
    assert batches
    for batch in batches:
        counts = Counter(identities[item] for item in batch)
        assert len(counts) == 2 and set(counts.values()) == {2}
    # Identity 2 has one tracklet: it is padded by repeating it.
    padded = [batch for batch in batches if 7 in batch]
    assert all(batch.count(7) == 2 for batch in padded)
    assert sampler.batches(0) == batches
    assert len(list(iter(sampler))) == len(batches) * 4
    assert sampler.epoch == 1


def test_identity_balanced_sampler_drives_a_dataloader(tmp_path: Path) -> None:
    tracklets = [
        frame_tracklet(tmp_path / f"t{index}", frame_count=3, identity=index // 2)
        for index in range(8)
    ]
    dataset = VideoClipDataset(tracklets, clip_length=2, image_size=(8, 4))
    sampler = IdentityBalancedSampler(dataset.identities, 2, 2, seed=1)
    loader = DataLoader(dataset, batch_size=sampler.batch_size, sampler=sampler, drop_last=True)
    clips, identities, cameras = next(iter(loader))
    assert clips.shape == (4, 2, 3, 8, 4)
    assert sorted(Counter(identities.tolist()).values()) == [2, 2]
    assert cameras.shape == (4,)


def test_identity_balanced_sampler_needs_enough_identities() -> None:
    with pytest.raises(ValueError, match="identities"):
        IdentityBalancedSampler([0, 0, 1], identities_per_batch=3, tracklets_per_identity=1)
