"""torch → ONNX export: checker, metadata, dynamic axes, and fp32 parity with torch.

Every encoder registered in ``reid_models.factory`` is exported once per session (``T = 2`` to
keep CPU time low) and compared with torch at batch sizes 1, 3 and 8.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from engines.export_onnx import (
    INPUT_NAME,
    MINIMUM_OPSET,
    OUTPUT_NAME,
    PARITY_MIN_COSINE,
    ExportedEncoderMetadata,
    ParityError,
    check_parity,
    cosine_per_row,
    export_encoder,
    export_named_encoder,
    read_onnx_metadata,
    state_dict_sha256,
)
from reid_models.factory import build_encoder, describe_encoder, encoder_names
from tests.toy_encoders import ToyEncoder, toy_metadata

CLIP_LENGTH = 2
PARITY_BATCH_SIZES = (1, 3, 8)


@dataclass
class Exported:
    name: str
    encoder: nn.Module
    path: Path
    metadata: ExportedEncoderMetadata


@pytest.fixture(scope="module", params=encoder_names())
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    name = str(request.param)
    encoder = build_encoder(name)
    path = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
    metadata = export_encoder(
        encoder,
        path,
        describe_encoder(encoder, name, "osnet_x0_25", clip_length=CLIP_LENGTH),
        parity_batch_sizes=(),  # compared below at more batch sizes
    )
    return Exported(name, encoder, path, metadata)


def _session(path: Path) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_checker_passes_and_opset_is_recent(exported: Exported) -> None:
    model = onnx.load(str(exported.path))
    onnx.checker.check_model(model, full_check=True)
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    assert opsets[""] >= MINIMUM_OPSET


def test_metadata_describes_the_model(exported: Exported) -> None:
    metadata = read_onnx_metadata(exported.path)
    assert metadata == exported.metadata
    assert metadata.architecture == exported.name
    assert metadata.embedding_dim == exported.encoder.embedding_dim
    assert (metadata.input_height, metadata.input_width) == (256, 128)
    assert metadata.clip_length == CLIP_LENGTH
    assert metadata.mean == (0.485, 0.456, 0.406) and metadata.std == (0.229, 0.224, 0.225)
    assert metadata.opset >= MINIMUM_OPSET
    assert metadata.source_sha256 == state_dict_sha256(exported.encoder)
    props = {prop.key: prop.value for prop in onnx.load(str(exported.path)).metadata_props}
    for key in ("architecture", "input_shape", "clip_length", "mean", "std", "embedding_dim"):
        assert f"crosscam.{key}" in props
    for key in ("opset", "source_sha256"):
        assert f"crosscam.{key}" in props


def test_graph_keeps_the_batch_axis_dynamic(exported: Exported) -> None:
    graph = onnx.load(str(exported.path)).graph
    (clips,) = [value for value in graph.input if value.name == INPUT_NAME]
    dimensions = clips.type.tensor_type.shape.dim
    assert dimensions[0].dim_param == "batch"
    assert [d.dim_value for d in dimensions[2:]] == [3, 256, 128]
    assert bool(dimensions[1].dim_param) == exported.metadata.dynamic_clip_length
    (embeddings,) = graph.output
    assert embeddings.name == OUTPUT_NAME


def test_parity_with_torch_at_several_batch_sizes(exported: Exported) -> None:
    report = check_parity(exported.encoder, exported.path, PARITY_BATCH_SIZES)
    assert report.min_cosine >= PARITY_MIN_COSINE
    assert report.batch_sizes == PARITY_BATCH_SIZES


def test_dynamic_clip_length_is_only_claimed_when_it_holds(exported: Exported) -> None:
    session = _session(exported.path)
    clips = np.random.default_rng(1).random((2, CLIP_LENGTH + 1, 3, 256, 128), dtype=np.float32)
    if not exported.metadata.dynamic_clip_length:
        pytest.skip(f"{exported.name} is exported with a fixed T={CLIP_LENGTH}")
    (onnx_embeddings,) = session.run(None, {INPUT_NAME: clips})
    with torch.inference_mode():
        expected = exported.encoder(torch.from_numpy(clips)).numpy()
    assert cosine_per_row(onnx_embeddings, expected).min() >= PARITY_MIN_COSINE


def test_unrolled_loop_falls_back_to_a_fixed_clip_length(tmp_path: Path) -> None:
    encoder = ToyEncoder(recurrent=True)
    metadata = export_encoder(encoder, tmp_path / "loop.onnx", toy_metadata(encoder, "loop"))
    assert not metadata.dynamic_clip_length
    assert read_onnx_metadata(tmp_path / "loop.onnx").input_shape() == ["batch", 4, 3, 256, 128]


def test_dynamic_clip_length_demanded_for_an_unrolled_loop_raises(tmp_path: Path) -> None:
    encoder = ToyEncoder(recurrent=True)
    with pytest.raises(ValueError, match="dynamic T not possible"):
        export_encoder(
            encoder, tmp_path / "loop.onnx", toy_metadata(encoder), dynamic_clip_length=True
        )
    assert not (tmp_path / "loop.onnx").exists()


def test_a_failing_dynamic_export_falls_back_to_a_fixed_clip_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engines import export_onnx

    trace = export_onnx._trace_to_onnx

    def trace_fixed_only(
        encoder: nn.Module, path: Path, sample: torch.Tensor, opset: int, dynamic_clip_length: bool
    ) -> None:
        if dynamic_clip_length:
            raise RuntimeError("Unsupported: ONNX export of operator X\n(graph dump ...)")
        trace(encoder, path, sample, opset, dynamic_clip_length=False)

    monkeypatch.setattr(export_onnx, "_trace_to_onnx", trace_fixed_only)
    encoder = ToyEncoder()
    metadata = export_encoder(encoder, tmp_path / "toy.onnx", toy_metadata(encoder))
    assert not metadata.dynamic_clip_length


def test_pooling_toy_gets_a_dynamic_clip_length(tmp_path: Path) -> None:
    encoder = ToyEncoder()
    metadata = export_encoder(encoder, tmp_path / "toy.onnx", toy_metadata(encoder))
    assert metadata.dynamic_clip_length
    assert metadata.input_shape() == ["batch", "T", 3, 256, 128]


def test_export_restores_training_mode_and_rejects_old_opsets(tmp_path: Path) -> None:
    encoder = ToyEncoder().train()
    export_encoder(encoder, tmp_path / "toy.onnx", toy_metadata(encoder), parity_batch_sizes=(1,))
    assert encoder.training
    with pytest.raises(ValueError, match="opset"):
        export_encoder(encoder, tmp_path / "old.onnx", toy_metadata(encoder), opset=13)


def test_parity_check_catches_different_weights(tmp_path: Path) -> None:
    encoder = ToyEncoder(seed=0)
    export_encoder(encoder, tmp_path / "toy.onnx", toy_metadata(encoder), parity_batch_sizes=())
    with pytest.raises(ParityError, match="cosine"):
        check_parity(ToyEncoder(seed=1), tmp_path / "toy.onnx", (2,))


def test_named_export_lands_in_the_cache_and_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reid_models import factory

    monkeypatch.setitem(factory.ENCODER_BUILDERS, "toy", "tests.toy_encoders:build_toy_encoder")
    path = export_named_encoder("toy", clip_length=3, cache_dir=tmp_path)
    assert path.parent == tmp_path / "onnx" and path.name.startswith("toy-osnet_x0_25-T3-")
    metadata = read_onnx_metadata(path)
    assert metadata.source == "bundled default" and metadata.clip_length == 3
    modified = path.stat().st_mtime_ns
    assert export_named_encoder("toy", clip_length=3, cache_dir=tmp_path) == path
    assert path.stat().st_mtime_ns == modified
