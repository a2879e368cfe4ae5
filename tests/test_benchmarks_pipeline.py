"""Pure parts of the pipeline and peer benchmarks: percentiles, timeline gaps, stream
duplication, the naive matcher, crops and plots. The model runs are marked slow."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.latency_report import (
    format_spread,
    plot_latency_cdf,
    plot_stage_breakdown,
    plot_throughput,
    spread,
    summarize,
    timeline_gaps,
)
from benchmarks.naive_matcher import NaiveCrossCameraMatcher
from benchmarks.peers import (
    ACCURACY_COLUMNS,
    CrosscamSystem,
    GlueSystem,
    crops_to_batch,
    crosscam_systems,
    glue_systems,
)
from benchmarks.pipeline import Measurement, aggregate, duplicate_streams, set_replay
from pipeline.config import CrosscamConfig, ReplayMode
from pipeline.stats import FrameTimeline

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def two_camera_config() -> CrosscamConfig:
    return CrosscamConfig.model_validate(
        {
            "cameras": [
                {"id": 0, "uri": "a.mp4", "name": "left", "start_seconds": 40},
                {"id": 1, "uri": "b.mp4"},
            ]
        }
    )


def test_summarize_matches_numpy_linear_percentiles() -> None:
    summary = summarize(float(v) for v in range(1, 101))
    assert summary["count"] == 100
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p95"] == pytest.approx(95.05)
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["max"] == 100.0
    assert summary["mean"] == pytest.approx(50.5)


def test_summarize_without_samples_is_nan() -> None:
    summary = summarize([])
    assert summary["count"] == 0
    assert all(math.isnan(summary[key]) for key in ("p50", "p95", "p99", "max"))


def test_spread_ignores_nan_and_formats() -> None:
    value = spread([3.0, float("nan"), 1.0, 2.0])
    assert value == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert format_spread(value) == "2.0 (1.0–3.0)"
    assert format_spread(spread([float("nan")])) == "–"


def test_timeline_keeps_first_stamp_and_bounds_memory() -> None:
    timeline = FrameTimeline(capacity=2)
    timeline.stamp("capture", [(0, 1)], 1.0)
    timeline.stamp("capture", [(0, 1)], 5.0)
    timeline.stamp("capture", [(0, 2), (0, 3)], 2.0)
    assert len(timeline) == 2
    assert [key for key, _ in timeline.rows()] == [(0, 2), (0, 3)]
    timeline.stamp("detect", [(0, 3)], 2.5)
    assert timeline.rows()[1][1] == {"capture": 2.0, "detect": 2.5}


def test_timeline_gaps_are_consecutive_stage_differences() -> None:
    full = {
        "capture": 0.0,
        "detect": 0.1,
        "track": 0.102,
        "clip": 0.103,
        "encode": 0.5,
        "match": 0.55,
        "publish": 0.56,
    }
    no_clip = {"capture": 1.0, "detect": 1.2, "track": 1.21}
    gaps = timeline_gaps([((0, 0), full), ((0, 1), no_clip), ((0, 2), {"detect": 3.0})])
    assert gaps["detect"] == pytest.approx([100.0, 200.0])
    assert gaps["track"] == pytest.approx([2.0, 10.0])
    assert gaps["encode"] == pytest.approx([397.0])
    assert gaps["publish"] == pytest.approx([10.0])
    assert gaps["frame_to_identity"] == pytest.approx([560.0])


def test_duplicate_streams_repeats_cameras_with_new_ids() -> None:
    config = two_camera_config()
    copy = duplicate_streams(config, 5)
    assert [camera.id for camera in copy.cameras] == [0, 1, 2, 3, 4]
    assert [camera.uri for camera in copy.cameras] == ["a.mp4", "b.mp4"] * 2 + ["a.mp4"]
    assert copy.cameras[2].name == "left-copy1"
    assert copy.cameras[3].name == "cam1-copy1"
    assert copy.cameras[4].start_seconds == 40
    assert [camera.id for camera in duplicate_streams(config, 1).cameras] == [0]
    assert len(config.cameras) == 2  # the original is untouched
    CrosscamConfig.model_validate(copy.model_dump())  # ids stay unique
    with pytest.raises(ValueError):
        duplicate_streams(config, 0)


def test_set_replay_sets_mode_and_segment() -> None:
    config = two_camera_config()
    set_replay(config, ReplayMode.REALTIME, 10.0)
    assert [camera.replay for camera in config.cameras] == [ReplayMode.REALTIME] * 2
    assert [camera.end_seconds for camera in config.cameras] == [50.0, 10.0]


def test_aggregate_spreads_over_repetitions() -> None:
    runs = [
        Measurement("crosscam", 2, wall_seconds=10.0, frames=f, latency={"x": [1.0, 3.0]})
        for f in (80, 100, 90)
    ]
    for run in runs:
        run.clips = 18
    table = aggregate(runs)["crosscam|2"]
    assert table["frames_per_second"] == {"median": 9.0, "min": 8.0, "max": 10.0, "n": 3}
    assert table["clips_per_frame"] == {"median": 0.2, "min": 0.18, "max": 0.225, "n": 3}
    assert table["latency_ms"]["x"]["p50"]["median"] == 2.0


def test_naive_matcher_links_similar_tracks_across_cameras() -> None:
    matcher = NaiveCrossCameraMatcher(similarity_threshold=0.6)
    person_a = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    person_b = np.array([[0.0, 2.0, 0.0]], dtype=np.float32)
    assert matcher.update(0, np.array([7]), person_a).tolist() == [1]
    assert matcher.update(0, np.array([8]), person_b).tolist() == [2]
    near_a = np.array([[0.9, 0.1, 0.0]], dtype=np.float32)
    assert matcher.update(1, np.array([3]), near_a).tolist() == [1]
    assert matcher.update(1, np.array([3]), person_b).tolist() == [1]  # a track keeps its id
    assert matcher.identity_count == 2
    matcher.reset()
    assert matcher.identity_count == 0


def test_naive_matcher_never_gives_one_id_to_two_tracks_of_a_frame() -> None:
    matcher = NaiveCrossCameraMatcher(similarity_threshold=0.6)
    same = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    assert matcher.update(0, np.array([1, 2]), same).tolist() == [1, 2]


def test_crops_to_batch_is_the_encoder_contract() -> None:
    image = np.zeros((100, 60, 3), dtype=np.uint8)
    image[..., 2] = 255  # red in BGR
    boxes = np.array([[10, 10, 30, 90], [-5, -5, 200, 200]], dtype=np.float32)
    batch = crops_to_batch(image, boxes, 256, 128)
    assert batch.shape == (2, 1, 3, 256, 128)
    assert batch.dtype == np.float32
    assert batch[:, :, 0].min() == 1.0 and batch[:, :, 1:].max() == 0.0  # RGB, in [0, 1]
    assert crops_to_batch(image, np.zeros((0, 4)), 256, 128).shape == (0, 1, 3, 256, 128)


def test_peer_systems_add_the_other_detector_runtime_only_when_it_differs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engines import detector_export

    monkeypatch.setattr(detector_export, "module_available", lambda name: True)
    config = two_camera_config()  # detector backend auto on the CPU: the ONNX export
    glue = glue_systems(config)
    assert glue["glue: ultralytics ByteTrack"] == GlueSystem("bytetrack.yaml")
    assert glue["glue: ultralytics ByteTrack, exported detector"].exported_detector
    careful = glue["glue: ultralytics ByteTrack, exported detector, ReID every 10 frames per track"]
    assert careful == GlueSystem("bytetrack.yaml", exported_detector=True, reid_every_frames=10)
    drsta = REPOSITORY_ROOT / "assets" / "weights" / "drsta_osnet_mined.pt"
    crosscam = crosscam_systems(config, f"drsta={drsta}")
    assert crosscam == {
        "crosscam (tp)": CrosscamSystem("tp", None),
        "crosscam (tp, torch detector)": CrosscamSystem("tp", None, "torch"),
        "crosscam (drsta, drsta_osnet_mined.pt)": CrosscamSystem("drsta", drsta),
    }
    config.detector.backend = "torch"
    assert list(glue_systems(config, reid_every_frames=5))[2:] == [
        "glue: ultralytics ByteTrack, ReID every 5 frames per track"
    ]
    assert len(glue_systems(config, reid_every_frames=1)) == 2
    assert list(crosscam_systems(config, "")) == ["crosscam (tp)"]


def test_plots_write_png_files(tmp_path: Path) -> None:
    cdf = plot_latency_cdf({"a": [1.0, 2.0, 30.0], "empty": []}, tmp_path / "cdf.png", "t")
    spreads = [spread([1.0, 2.0]), spread([3.0, 4.0])]
    throughput = plot_throughput([1, 2], {"x": spreads}, tmp_path / "throughput.png")
    stages = plot_stage_breakdown(
        {"1 stream": {"detect": 100.0, "encode": float("nan")}}, tmp_path / "sub" / "stages.png"
    )
    for path in (cdf, throughput, stages):
        assert path.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_pipeline_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    from benchmarks.pipeline import main

    arguments = ["--streams", str(REPOSITORY_ROOT / "configs" / "demo.yaml")]
    arguments += ["--streams-count", "1", "--duration", "2", "--repeats", "1"]
    assert main([*arguments, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "pipeline_fast.json").is_file()
    assert (tmp_path / "pipeline_fast_throughput.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_peers_benchmark_runs_every_system_and_scores_it(tmp_path: Path) -> None:
    import json

    from benchmarks.peers import main

    arguments = ["--streams", str(REPOSITORY_ROOT / "benchmarks" / "configs" / "terrace1.yaml")]
    arguments += ["--gt", str(REPOSITORY_ROOT / "benchmarks" / "ground_truth" / "terrace1.json")]
    arguments += ["--start", "40", "--duration", "3", "--repeats", "1", "--out", str(tmp_path)]
    assert main(arguments) == 0
    report = json.loads((tmp_path / "peers.json").read_text())
    assert len(report["systems"]) == 6  # 4 glue rows, crosscam on both detector runtimes
    careful = report["systems"][
        "glue: ultralytics ByteTrack, exported detector, ReID every 10 frames per track"
    ]
    assert set(ACCURACY_COLUMNS) <= set(careful)
    for entry in report["systems"].values():
        assert entry["frames_per_second"]["median"] > 0
        assert 0.0 <= entry["idf1_all_cameras"]["median"] <= 1.0
    assert "crosscam (tp)" in (tmp_path / "peers.md").read_text()


def test_readme_section_is_replaced_between_markers() -> None:
    from benchmarks.performance_readme import BEGIN, END, replace_section

    readme = f"# x\n\n{BEGIN}\nold\n{END}\n\n## Tests\n"
    assert (
        replace_section(readme, f"{BEGIN}\nnew\n{END}")
        == f"# x\n\n{BEGIN}\nnew\n{END}\n\n## Tests\n"
    )
    inserted = replace_section("# x\n\n## Tests\nrun\n", f"{BEGIN}\nnew\n{END}")
    assert inserted == f"# x\n\n{BEGIN}\nnew\n{END}\n\n## Tests\nrun\n"


def test_projection_adds_up_stage_costs() -> None:
    from benchmarks.performance_readme import projection_rows, stage_costs

    run = {
        "system": "crosscam",
        "streams": 2,
        "frames": 100,
        "clips": 10,
        "latency_ms": {
            "detect_compute": {"mean": 100.0, "count": 50},  # 5000 ms over 100 frames
            "encode_compute": {"mean": 200.0, "count": 5},  # 1000 ms over 10 clips
            "track_compute": {"mean": 1.0, "count": 100},
        },
    }
    costs = stage_costs({"measurements": [run, {**run, "system": "detector only"}]})
    assert costs[2] == pytest.approx(
        {
            "detect_ms_per_frame": 50.0,
            "encode_ms_per_clip": 100.0,
            "clips_per_frame": 0.1,
            "other_ms_per_frame": 1.0,
        }
    )
    (row,) = projection_rows(costs, [10.0])
    assert row[5] == "61.0"  # 50 + 1 + 0.1 x 100 ms per frame
    assert row[6] == f"{1000 / 61 / 10:.2f}"


def test_readme_performance_table_keeps_every_accuracy_column() -> None:
    from benchmarks.peers import ACCURACY_COLUMNS
    from benchmarks.performance_readme import performance_section

    section = performance_section(REPOSITORY_ROOT / "benchmarks" / "results" / "vm")
    header = next(line for line in section.splitlines() if line.startswith("| system |"))
    assert all(f"| {title} |" in header + " |" for title in ACCURACY_COLUMNS.values())


def test_passes_cost_ratios_pair_runs_of_one_repetition():
    import argparse

    from benchmarks.passes_cost import markdown, summarise

    def run(frames_per_second: float) -> dict[str, float]:
        return {
            "frames": 100.0,
            "seconds": 100.0 / frames_per_second,
            "frames_per_second": frames_per_second,
            "passes": 3.0,
            "pass_seconds": 0.5,
        }

    arguments = argparse.Namespace(
        machine="test", streams=Path("configs/demo.yaml"), duration=60.0, repeats=2
    )
    runs = {
        "off": [run(10.0), run(20.0)],
        "inline": [run(9.0), run(19.0)],
        "background": [run(10.0), run(20.0)],
    }
    report = summarise(arguments, runs)
    assert report["variants"]["inline"]["ratios"] == [0.9, 0.95]
    assert report["variants"]["inline"]["ratio_to_off"] == 0.925
    assert report["variants"]["background"]["ratio_to_off"] == 1.0
    assert "| inline | 14.0 |" in markdown(report)
