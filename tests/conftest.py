"""Shared pytest configuration: slow and GPU tests are skipped unless asked for; the
``started`` fixture stops camera sources after a test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.sources import CameraSource

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
ASSETS = REPOSITORY_ROOT / "assets"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow or gpu")


@pytest.fixture
def started() -> Iterator[list[CameraSource]]:
    """Camera sources appended here are stopped at teardown, whatever the test did."""
    sources: list[CameraSource] = []
    yield sources
    for source in sources:
        source.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        gpu_available = _cuda_available()
        for item in items:
            if "gpu" in item.keywords and not gpu_available:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        return
    skip = pytest.mark.skip(reason="heavy test: run with --run-slow (make slow)")
    for item in items:
        if "slow" in item.keywords or "gpu" in item.keywords:
            item.add_marker(skip)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
