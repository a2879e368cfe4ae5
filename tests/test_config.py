"""Configuration loading: typed sections, one-line errors naming the key, overrides, the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import ConfigError, CrosscamConfig, ReplayMode, load_config
from reid_models.sampling import SamplingMode
from tests.conftest import ASSETS, REPOSITORY_ROOT

VIDEO = ASSETS / "videos" / "epfl_terrace1-c0.mp4"
DETECTOR_WEIGHTS = ASSETS / "weights" / "yolov8_person_hfd.pt"


def minimal_config(**sections: Any) -> dict[str, Any]:
    """A valid raw config with absolute paths, plus the given top-level sections."""
    raw: dict[str, Any] = {
        "cameras": [{"id": 0, "uri": str(VIDEO)}],
        "detector": {"weights": str(DETECTOR_WEIGHTS)},
    }
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(name), dict):
            raw[name] = raw[name] | value
        else:
            raw[name] = value
    return raw


def write_yaml(directory: Path, raw: object, name: str = "cams.yaml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


def config_error(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    message = str(caught.value)
    assert "\n" not in message, "config errors are one line"
    return message


def test_demo_config_loads_with_every_path_resolved():
    config = load_config(REPOSITORY_ROOT / "configs" / "demo.yaml")
    assert isinstance(config, CrosscamConfig)
    assert [camera.id for camera in config.cameras] == [0, 1]
    for camera in config.cameras:
        assert camera.is_file and not camera.is_network and not camera.is_webcam
        assert Path(camera.uri).is_absolute() and Path(camera.uri).is_file()
        assert camera.fps_cap == 10
        assert (camera.start_seconds, camera.end_seconds) == (40, 100)
        assert camera.replay is ReplayMode.FAST
    assert [camera.display_name for camera in config.cameras] == ["terrace-c0", "terrace-c1"]
    assert config.detector.weights.is_absolute() and config.detector.weights.is_file()
    assert config.detector.image_size == 416
    assert config.encoder.model == "tp"
    assert config.clips.sampling is SamplingMode.EVENLY
    assert config.outputs.run_directory == REPOSITORY_ROOT / "runs"


def test_sections_left_out_take_their_defaults(tmp_path: Path):
    config = load_config(write_yaml(tmp_path, minimal_config()))
    assert config.clips.clip_length == 8
    assert config.matching.similarity_threshold == 0.75
    assert config.redis.url == ""
    assert config.cameras[0].display_name == "cam0"


@pytest.mark.parametrize(
    ("raw", "key_path"),
    [
        (minimal_config(detector={"imgsz": 416}), "detector.imgsz"),
        (minimal_config(cameras=[{"id": 0, "uri": str(VIDEO), "fps": 5}]), "cameras.0.fps"),
        (minimal_config(tracking={"lost_track_seconds": 1}), "tracking"),
    ],
)
def test_unknown_key_is_an_error_naming_its_path(tmp_path: Path, raw: dict[str, Any], key_path):
    message = config_error(write_yaml(tmp_path, raw))
    assert f"unknown key '{key_path}'" in message
    assert str(tmp_path / "cams.yaml") in message


@pytest.mark.parametrize(
    ("raw", "key_path", "value"),
    [
        (minimal_config(detector={"image_size": "big"}), "detector.image_size", "'big'"),
        (minimal_config(cameras=[{"id": "zero", "uri": str(VIDEO)}]), "cameras.0.id", "'zero'"),
        (minimal_config(clips={"clip_length": 0}), "clips.clip_length", "0"),
        (minimal_config(clips={"sampling": "sometimes"}), "clips.sampling", "'sometimes'"),
        (minimal_config(cameras=[{"id": 0, "uri": str(VIDEO), "fps_cap": -1}]), "cameras.0", "-1"),
    ],
)
def test_wrong_type_or_range_names_the_key_and_the_value(
    tmp_path: Path, raw: dict[str, Any], key_path: str, value: str
):
    message = config_error(write_yaml(tmp_path, raw))
    assert f"key '{key_path}" in message
    assert f"got {value}" in message


def test_missing_cameras_is_named(tmp_path: Path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    message = config_error(path)
    assert message.startswith(f"{path}: ") and "'cameras'" in message


def test_missing_video_file_names_the_camera_and_the_absolute_path(tmp_path: Path):
    raw = minimal_config(cameras=[{"id": 0, "uri": str(VIDEO)}, {"id": 7, "uri": "gone.mp4"}])
    message = config_error(write_yaml(tmp_path, raw))
    assert message.startswith("cameras.1.uri: video file not found")
    assert str(tmp_path / "gone.mp4") in message


def test_missing_weights_are_named(tmp_path: Path):
    raw = minimal_config(detector={"weights": "nowhere/yolo.pt"})
    message = config_error(write_yaml(tmp_path, raw))
    assert message.startswith("detector.weights: file not found")
    assert str(tmp_path / "nowhere" / "yolo.pt") in message
    raw = minimal_config(encoder={"weights": "nowhere/tp.pt"})
    assert config_error(write_yaml(tmp_path, raw)).startswith("encoder.weights: file not found")


def test_missing_config_file_is_named(tmp_path: Path):
    missing = tmp_path / "no_such.yaml"
    message = config_error(missing)
    assert "config file not found" in message and str(missing) in message


def test_bad_yaml_names_the_file_and_line(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("cameras:\n  - id: 0\n    uri: [unclosed\n")
    message = config_error(path)
    assert message.startswith(f"{path} line ")
    assert "not valid YAML" in message


def test_top_level_must_be_a_mapping(tmp_path: Path):
    message = config_error(write_yaml(tmp_path, [{"id": 0, "uri": str(VIDEO)}]))
    assert "top level must be a mapping" in message


def test_duplicate_camera_ids_are_refused(tmp_path: Path):
    cameras = [{"id": 3, "uri": str(VIDEO)}, {"id": 1, "uri": str(VIDEO)}]
    cameras.append({"id": 3, "uri": str(VIDEO), "name": "again"})
    message = config_error(write_yaml(tmp_path, minimal_config(cameras=cameras)))
    assert "key 'cameras'" in message
    assert "camera ids must be unique, repeated: [3]" in message


@pytest.mark.parametrize("image_size", [400, 417, 33])
def test_image_size_must_be_a_multiple_of_32(tmp_path: Path, image_size: int):
    raw = minimal_config(detector={"image_size": image_size})
    message = config_error(write_yaml(tmp_path, raw))
    assert "key 'detector.image_size'" in message
    assert "multiple of 32" in message
    assert f"e.g. {image_size - image_size % 32}" in message


def test_image_size_multiple_of_32_is_accepted(tmp_path: Path):
    raw = minimal_config(detector={"image_size": 640})
    assert load_config(write_yaml(tmp_path, raw)).detector.image_size == 640


def test_relative_paths_are_resolved_against_the_yaml_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    project = tmp_path / "project"
    for relative in ("videos/a.mp4", "weights/det.pt", "weights/tp.pth"):
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_bytes(b"only its existence is checked here")
    raw = {
        "cameras": [
            {"id": 0, "uri": "../videos/a.mp4"},
            {"id": 1, "uri": "rtsp://user:pw@10.0.0.5/stream"},
            {"id": 2, "uri": 0},
        ],
        "detector": {"weights": "../weights/det.pt"},
        "encoder": {"weights": "../weights/tp.pth"},
        "outputs": {"run_directory": "../runs", "save_mtmc": "out/run.mtmc"},
    }
    path = write_yaml(project / "configs", raw)
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    config = load_config(path)
    assert config.cameras[0].uri == str(project / "videos" / "a.mp4")
    assert config.cameras[1].uri == "rtsp://user:pw@10.0.0.5/stream"
    assert config.cameras[1].is_network
    assert config.cameras[2].uri == "0" and config.cameras[2].is_webcam
    assert config.detector.weights == project / "weights" / "det.pt"
    assert config.encoder.weights == project / "weights" / "tp.pth"
    assert config.outputs.run_directory == project / "runs"
    assert config.outputs.save_mtmc == project / "configs" / "out" / "run.mtmc"


def test_overrides_set_values_parsed_as_yaml(tmp_path: Path):
    path = write_yaml(tmp_path, minimal_config(encoder={"model": "drsta"}))
    config = load_config(
        path,
        [
            "encoder.model=tp",
            "encoder.max_batch=4",
            "cameras.0.fps_cap=5",
            "cameras.0.loop=true",
            "matching.similarity_threshold=0.7",
        ],
    )
    assert config.encoder.model == "tp"
    assert config.encoder.max_batch == 4
    assert config.cameras[0].fps_cap == 5.0
    assert config.cameras[0].loop is True
    assert config.matching.similarity_threshold == 0.7  # a section absent from the YAML


def test_overrides_are_validated_like_the_yaml(tmp_path: Path):
    path = write_yaml(tmp_path, minimal_config())
    assert "unknown key 'detector.imgsz'" in config_error(path, ["detector.imgsz=416"])
    message = config_error(path, ["cameras.0.fps_cap=fast"])
    assert "key 'cameras.0.fps_cap'" in message and "'fast'" in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("encoder.model", "expected key.path=value"),
        ("=tp", "expected key.path=value"),
        ("cameras.3.fps_cap=5", "no list item '3' (have 1)"),
        ("cameras.first.fps_cap=5", "no list item 'first'"),
        ("detector.weights.name=x", "detector.weights is a value, not a section"),
    ],
)
def test_bad_override_forms_are_config_errors(tmp_path: Path, override: str, expected: str):
    message = config_error(write_yaml(tmp_path, minimal_config()), [override])
    assert message.startswith("--set ")
    assert expected in message


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "run.py", *arguments],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_error_line(completed: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]
    assert completed.stdout == ""


def test_cli_config_error_exits_2_with_one_line(tmp_path: Path):
    bad = write_yaml(tmp_path, minimal_config(detector={"imgsz": 416}), name="bad.yaml")
    assert_one_error_line(run_cli("--streams", str(bad)), "detector.imgsz", str(bad))
    completed = run_cli("--streams", str(tmp_path / "absent.yaml"))
    assert_one_error_line(completed, "config file not found")
    good = write_yaml(tmp_path, minimal_config(), name="good.yaml")
    completed = run_cli("--streams", str(good), "--set", "encoder.model")
    assert_one_error_line(completed, "--set 'encoder.model'")


def test_cli_config_error_with_brackets_in_a_value_is_still_one_line(tmp_path: Path):
    raw = minimal_config(cameras=[{"id": 0, "uri": str(VIDEO), "fps_cap": "[/x]"}])
    bad = write_yaml(tmp_path, raw, name="bad.yaml")
    assert_one_error_line(run_cli("--streams", str(bad)), "cameras.0.fps_cap", "[/x]")


def test_full_example_loads_and_lists_every_key() -> None:
    """configs/full.yaml is the documented list of every key: it must load and name them all."""
    from pydantic import BaseModel

    from pipeline.config import CameraConfig

    path = REPOSITORY_ROOT / "configs" / "full.yaml"
    load_config(path)
    raw = yaml.safe_load(path.read_text())
    assert set(raw) == set(CrosscamConfig.model_fields)
    for section, field in CrosscamConfig.model_fields.items():
        annotation = field.annotation
        model = annotation if isinstance(annotation, type) else None
        if section == "cameras":
            model, entry = CameraConfig, raw["cameras"][0]
        else:
            entry = raw[section]
        if model is not None and issubclass(model, BaseModel):
            assert set(entry) == set(model.model_fields), section
