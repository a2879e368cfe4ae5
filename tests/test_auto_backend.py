"""``backend: auto``: the GPU order, fall-through on failures, and the timed CPU choice."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from engines import auto
from engines.base import Engine, EngineSpec, load_engine


class SleepyEngine:
    """An engine that takes ``seconds`` per call and returns zeros."""

    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds

    def infer(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds)
        return np.zeros((len(batch), 4), dtype=np.float32)


class FakeLoader:
    """Stands in for ``engines.base.load_engine``: records calls, fails where told."""

    def __init__(self, seconds: dict[str, float], failing: tuple[str, ...] = ()) -> None:
        self.seconds = seconds
        self.failing = failing
        self.calls: list[tuple[str, EngineSpec]] = []

    def __call__(self, backend: str, spec: EngineSpec) -> Engine:
        self.calls.append((backend, spec))
        if backend in self.failing:
            raise RuntimeError(f"{backend} exploded")
        return SleepyEngine(backend, self.seconds.get(backend, 0.0))


def machine(
    monkeypatch: pytest.MonkeyPatch,
    *,
    cuda: bool,
    tensorrt: bool = False,
    onnxruntime_cuda: bool = False,
) -> None:
    monkeypatch.setattr(auto, "cuda_available", lambda: cuda)
    monkeypatch.setattr(auto, "tensorrt_available", lambda: tensorrt)
    monkeypatch.setattr(auto, "onnxruntime_cuda_available", lambda: onnxruntime_cuda)


SPEC = EngineSpec(
    model="tp",
    weights=None,
    device="auto",
    options={"auto_timing_batch": 1, "clip_length": 1, "auto_timing_repeats": 2},
)


@pytest.mark.parametrize(
    ("tensorrt", "onnxruntime_cuda", "expected", "precision"),
    [
        (True, True, "tensorrt", "fp16"),
        (False, True, "onnxruntime", None),
        (False, False, "torch", "fp16"),
    ],
)
def test_gpu_order(
    monkeypatch: pytest.MonkeyPatch,
    tensorrt: bool,
    onnxruntime_cuda: bool,
    expected: str,
    precision: str | None,
) -> None:
    machine(monkeypatch, cuda=True, tensorrt=tensorrt, onnxruntime_cuda=onnxruntime_cuda)
    loader = FakeLoader({})
    monkeypatch.setattr(auto, "load_engine", loader)
    engine, choice = auto.choose_engine(SPEC)
    assert engine.name == expected and choice.backend == expected
    assert choice.device == "cuda" and len(loader.calls) == 1
    assert loader.calls[0][1].options.get("precision") == precision


def test_a_failing_gpu_candidate_falls_through(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, cuda=True, tensorrt=True, onnxruntime_cuda=True)
    loader = FakeLoader({}, failing=("tensorrt", "onnxruntime"))
    monkeypatch.setattr(auto, "load_engine", loader)
    _, choice = auto.choose_engine(replace_device(SPEC, "cuda:1"))
    assert choice.backend == "torch" and choice.device == "cuda:1"
    assert [backend for backend, _ in loader.calls] == ["tensorrt", "onnxruntime", "torch"]
    assert "tensorrt exploded" in choice.reason and "onnxruntime exploded" in choice.reason


def test_config_options_override_auto_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, cuda=True)
    loader = FakeLoader({})
    monkeypatch.setattr(auto, "load_engine", loader)
    spec = EngineSpec(model="tp", weights=None, device="cuda", options={"precision": "fp32"})
    auto.choose_engine(spec)
    assert loader.calls[0][1].options["precision"] == "fp32"


@pytest.mark.parametrize(("slow", "fast"), [("torch", "onnxruntime"), ("onnxruntime", "torch")])
def test_cpu_keeps_the_faster_of_two(monkeypatch: pytest.MonkeyPatch, slow: str, fast: str) -> None:
    machine(monkeypatch, cuda=False)
    monkeypatch.setattr(auto, "load_engine", FakeLoader({slow: 0.03, fast: 0.0}))
    engine, choice = auto.choose_engine(SPEC)
    assert engine.name == fast and choice.device == "cpu"
    assert choice.timings_ms[slow] > choice.timings_ms[fast]
    assert f"{fast} CPU" in choice.reason and f"vs {slow} CPU" in choice.reason


def test_cpu_with_one_failing_backend_keeps_the_other(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, cuda=False)
    monkeypatch.setattr(auto, "load_engine", FakeLoader({}, failing=("onnxruntime",)))
    engine, choice = auto.choose_engine(SPEC)
    assert engine.name == "torch" and "onnxruntime exploded" in choice.reason
    monkeypatch.setattr(auto, "load_engine", FakeLoader({}, failing=("onnxruntime", "torch")))
    with pytest.raises(RuntimeError, match="no CPU backend"):
        auto.choose_engine(SPEC)


def test_explicit_cpu_device_stays_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    machine(monkeypatch, cuda=True, tensorrt=True)
    loader = FakeLoader({})
    monkeypatch.setattr(auto, "load_engine", loader)
    with caplog.at_level(logging.INFO, logger="engines.auto"):
        _, choice = auto.choose_engine(replace_device(SPEC, "cpu"))
    assert choice.device == "cpu" and {b for b, _ in loader.calls} == {"onnxruntime", "torch"}
    assert "set device: auto" in caplog.text


def test_cuda_asked_without_a_gpu_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, cuda=False)
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        auto.choose_engine(replace_device(SPEC, "cuda"))


def test_load_engine_auto_logs_and_keeps_the_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Real engines on this CPU: a toy encoder exported to ONNX and run by torch, timed."""
    from reid_models import factory

    machine(monkeypatch, cuda=False)
    monkeypatch.setitem(factory.ENCODER_BUILDERS, "toy", "tests.toy_encoders:build_toy_encoder")
    spec = EngineSpec(
        model="toy",
        weights=None,
        device="cpu",
        options={"cache_dir": str(tmp_path), "clip_length": 2, "auto_timing_batch": 2},
    )
    with caplog.at_level(logging.INFO, logger="engines.auto"):
        engine = load_engine("auto", spec)
    choice = engine.auto_choice  # type: ignore[attr-defined]
    assert choice.backend in {"onnxruntime", "torch"} and engine.name == choice.backend
    assert set(choice.timings_ms) == {"onnxruntime", "torch"}
    assert f"backend auto chose {choice.backend} on cpu" in caplog.text
    batch = np.random.default_rng(0).random((3, 2, 3, 256, 128), dtype=np.float32)
    assert engine.infer(batch).shape == (3, 16)


def replace_device(spec: EngineSpec, device: str) -> EngineSpec:
    return EngineSpec(spec.model, spec.weights, device, dict(spec.options))
