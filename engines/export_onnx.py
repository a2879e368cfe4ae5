"""torch → ONNX export of clip encoders, with their metadata inside the file and a parity check.

The exported graph keeps the encoder input contract (``reid_models.contract``): by default
input ``clips`` float32 ``(batch, T, 3, H, W)`` RGB in ``[0, 1]``, output ``embeddings`` float32
``(batch, embedding_dim)`` L2-normalised; mean/std normalisation is the model's first layer, so
it is baked into the graph and ONNX Runtime and TensorRT take the same input as torch.

With ``input_format="uint8_bgr"`` the graph takes the camera crops themselves: input ``crops``
uint8 ``(batch, T, H, W, 3)`` BGR in ``[0, 255]``; the cast, layout change, BGR -> RGB and
``/ 255`` are graph operations in front of the encoder (``reid_models.contract.CropsInput``),
so the host hands its uint8 staging buffer on as it is. The format is in the metadata
(``input_format``; a file without it is a float graph), and every runtime reads it there.

- The batch axis is always dynamic. The clip-length axis ``T`` is dynamic when the model
  allows it: a traced Python loop over frames (RRU+STIM) is unrolled for the traced ``T`` and
  would silently give wrong embeddings for another ``T``, so by default the export is probed
  at other clip lengths against torch and falls back to a fixed ``T``.
- Metadata (:class:`ExportedEncoderMetadata`: architecture, backbone, input size, ``T``,
  mean/std, embedding size, opset, sha256 of the source weights, ...) is written into the
  ONNX ``metadata_props``, one JSON-encoded value per key; :func:`read_onnx_metadata` reads it
  back, so runtimes trust the file, not a config.
- ``onnx.checker`` runs on every export, and :func:`check_parity` compares ONNX Runtime with
  torch (cosine per embedding, fp32; a uint8 graph against torch on the same crops converted
  by ``reid_models.clip_input.crops_to_clips``).

Command line: ``python -m engines.export_onnx --model tp [--input-format uint8_bgr]`` prints
the path of the exported file in the cache (``engines.cache.default_cache_dir()/onnx``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn

from engines.base import EngineSpec
from engines.cache import default_cache_dir
from reid_models.clip_input import (
    FLOAT_CLIPS,
    INPUT_FORMATS,
    UINT8_CROPS,
    InputFormat,
    crops_to_clips,
    input_dtype,
    input_shape,
)
from reid_models.contract import CropsInput
from reid_models.factory import (
    DEFAULT_CLIP_LENGTH,
    EncoderMetadata,
    build_encoder,
    describe_encoder,
    is_encoder_checkpoint,
    read_encoder_metadata,
)

logger = logging.getLogger(__name__)

INPUT_NAME = "clips"
CROPS_INPUT_NAME = "crops"
"""The input name of a ``uint8_bgr`` graph."""
OUTPUT_NAME = "embeddings"
MINIMUM_OPSET = 17
DEFAULT_OPSET = 17
PARITY_MIN_COSINE = 0.9999
"""Lowest cosine similarity between an fp32 ONNX embedding and its torch embedding."""
METADATA_KEY_PREFIX = "crosscam."


class ExportedEncoderMetadata(EncoderMetadata):
    """:class:`~reid_models.factory.EncoderMetadata` plus what the export decided.

    Attributes:
        opset: ONNX opset of the graph.
        dynamic_clip_length: whether the ``T`` axis of the input is dynamic; when ``False`` the
            graph only takes ``clip_length`` frames.
        source_sha256: sha256 of the exported weights (:func:`state_dict_sha256`).
        source: where the weights came from (a file name, or ``"bundled default"``).
        input_name, output_name: graph tensor names.
        torch_version: torch that traced the graph.
        input_format: ``"float32_rgb"`` (float32 ``(batch, T, 3, H, W)`` RGB in ``[0, 1]``;
            the default, and what a file written before this field holds) or ``"uint8_bgr"``
            (uint8 ``(batch, T, H, W, 3)`` BGR crops, converted inside the graph).
    """

    opset: int = Field(ge=MINIMUM_OPSET)
    dynamic_clip_length: bool
    source_sha256: str
    source: str = ""
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    torch_version: str = ""
    input_format: InputFormat = FLOAT_CLIPS

    def input_shape(self) -> list[int | str]:
        """``["batch", T or "T", 3, H, W]`` (``[..., H, W, 3]`` for uint8 crops): the input
        shape with symbolic dynamic axes."""
        clip_axis: int | str = "T" if self.dynamic_clip_length else self.clip_length
        return input_shape(
            self.input_format, "batch", clip_axis, self.input_height, self.input_width
        )

    def input_dtype(self) -> np.dtype:
        """float32 or uint8, as :attr:`input_format` says."""
        return input_dtype(self.input_format)


class ParityError(AssertionError):
    """An exported graph's embeddings differ from torch's."""


@dataclass(frozen=True)
class ParityReport:
    """Outcome of :func:`check_parity`.

    Attributes:
        min_cosine: lowest per-embedding cosine similarity, ONNX vs torch.
        max_abs_difference: largest absolute element difference.
        batch_sizes: batch sizes compared.
        clip_length: ``T`` of the compared clips.
    """

    min_cosine: float
    max_abs_difference: float
    batch_sizes: tuple[int, ...]
    clip_length: int


def state_dict_sha256(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes and bytes, in name order).

    Independent of the file format the weights came in, so it names exactly what is exported.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cosine_per_row(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows of two ``(batch, D)`` arrays, float64 ``(batch,)``."""
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    return np.asarray((first * second).sum(axis=1) / np.maximum(norms, 1e-12))


def _random_clips(batch: int, clip_length: int, height: int, width: int, seed: int) -> np.ndarray:
    generator = np.random.default_rng(seed)
    return generator.random((batch, clip_length, 3, height, width), dtype=np.float32)


def _random_inputs(
    input_format: InputFormat, batch: int, clip_length: int, height: int, width: int, seed: int
) -> np.ndarray:
    """Random graph inputs: float clips in ``[0, 1)``, or uint8 crops over all 256 levels."""
    if input_format == UINT8_CROPS:
        generator = np.random.default_rng(seed)
        shape = (batch, clip_length, height, width, 3)
        return generator.integers(0, 256, shape, dtype=np.uint8)
    return _random_clips(batch, clip_length, height, width, seed)


def _torch_embeddings(encoder: nn.Module, inputs: np.ndarray) -> np.ndarray:
    """The torch encoder's embeddings of float clips, or of uint8 crops converted on the host
    (``crops_to_clips``: the reference the in-graph conversion is held to)."""
    clips = crops_to_clips(inputs) if inputs.dtype == np.uint8 else inputs
    with torch.inference_mode():
        return encoder(torch.from_numpy(clips)).float().numpy()


def _ort_session(path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # probe failures are reported by the caller
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def _trace_to_onnx(
    encoder: nn.Module,
    path: Path,
    sample: torch.Tensor,
    opset: int,
    dynamic_clip_length: bool,
) -> None:
    """Trace ``encoder`` on ``sample``; the input is ``crops`` when the sample is uint8."""
    input_name = CROPS_INPUT_NAME if sample.dtype == torch.uint8 else INPUT_NAME
    input_axes = {0: "batch", 1: "T"} if dynamic_clip_length else {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        torch.onnx.export(
            encoder,
            (sample,),
            str(path),
            input_names=[input_name],
            output_names=[OUTPUT_NAME],
            dynamic_axes={input_name: input_axes, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def _clip_length_probes(clip_length: int) -> list[int]:
    return sorted({clip_length + 1, max(1, clip_length // 2)} - {clip_length})


def _dynamic_clip_length_works(
    encoder: nn.Module,
    path: Path,
    clip_length: int,
    height: int,
    width: int,
    input_format: InputFormat = FLOAT_CLIPS,
) -> tuple[bool, str]:
    """Whether the graph at ``path`` matches torch at clip lengths other than the traced one."""
    try:
        session = _ort_session(path)
    except ImportError:
        return False, "onnxruntime is not installed, so dynamic T cannot be checked"
    input_name = session.get_inputs()[0].name
    for probe_length in _clip_length_probes(clip_length):
        clips = _random_inputs(input_format, 1, probe_length, height, width, seed=probe_length)
        try:
            (exported,) = session.run([OUTPUT_NAME], {input_name: clips})
        except Exception as error:  # ORT raises its own exception types
            return False, f"T={probe_length} fails in ONNX Runtime ({error})"
        cosine = float(cosine_per_row(exported, _torch_embeddings(encoder, clips)).min())
        if cosine < PARITY_MIN_COSINE:
            return False, f"T={probe_length} gives cosine {cosine:.6f} vs torch (unrolled loop?)"
    return True, "matches torch at other clip lengths"


def _metadata_props(metadata: ExportedEncoderMetadata) -> dict[str, str]:
    values: dict[str, Any] = metadata.model_dump(mode="json")
    values["input_shape"] = metadata.input_shape()
    values["input_dtype"] = metadata.input_dtype().name
    return {METADATA_KEY_PREFIX + key: json.dumps(value) for key, value in values.items()}


def read_onnx_metadata(path_or_model: Path | Any) -> ExportedEncoderMetadata:
    """The :class:`ExportedEncoderMetadata` stored in an ONNX file (or loaded ``ModelProto``).

    Raises:
        ValueError: the file has no crosscam metadata.
    """
    import onnx

    model = (
        onnx.load(str(path_or_model), load_external_data=False)
        if isinstance(path_or_model, str | Path)
        else path_or_model
    )
    return metadata_from_props({prop.key: prop.value for prop in model.metadata_props})


def metadata_from_props(props: dict[str, str]) -> ExportedEncoderMetadata:
    """Parse ``crosscam.*`` metadata entries (as ONNX Runtime's ``custom_metadata_map`` gives
    them) into :class:`ExportedEncoderMetadata`.

    Raises:
        ValueError: no crosscam metadata among ``props``.
    """
    fields = ExportedEncoderMetadata.model_fields
    values = {
        key.removeprefix(METADATA_KEY_PREFIX): json.loads(value)
        for key, value in props.items()
        if key.startswith(METADATA_KEY_PREFIX) and key.removeprefix(METADATA_KEY_PREFIX) in fields
    }
    if not values:
        raise ValueError("no crosscam encoder metadata in this ONNX model")
    return ExportedEncoderMetadata.model_validate(values)


def check_parity(
    encoder: nn.Module,
    path: Path,
    batch_sizes: Sequence[int] = (1, 2),
    clip_length: int | None = None,
    min_cosine: float = PARITY_MIN_COSINE,
    seed: int = 0,
) -> ParityReport:
    """Compare ONNX Runtime (CPU, fp32) with the torch encoder on random clips.

    A ``uint8_bgr`` graph gets random uint8 crops and torch the same crops converted by
    ``reid_models.clip_input.crops_to_clips``, so the in-graph conversion is checked too.

    Args:
        encoder: the torch encoder the file was exported from (run in eval mode; the plain
            encoder, without :class:`~reid_models.contract.CropsInput`).
        path: the exported ONNX file.
        batch_sizes: batch sizes to compare.
        clip_length: ``T`` of the clips; ``None`` = the file's ``clip_length``.
        min_cosine: lowest accepted cosine per embedding.

    Raises:
        ParityError: some embedding's cosine is below ``min_cosine``.
    """
    metadata = read_onnx_metadata(path)
    clip_length = metadata.clip_length if clip_length is None else clip_length
    session = _ort_session(path)
    was_training = encoder.training
    encoder.eval()
    cosines: list[np.ndarray] = []
    max_abs_difference = 0.0
    try:
        for batch_size in batch_sizes:
            clips = _random_inputs(
                metadata.input_format,
                batch_size,
                clip_length,
                metadata.input_height,
                metadata.input_width,
                seed + batch_size,
            )
            (exported,) = session.run([metadata.output_name], {metadata.input_name: clips})
            expected = _torch_embeddings(encoder, clips)
            cosines.append(cosine_per_row(exported, expected))
            max_abs_difference = max(max_abs_difference, float(np.abs(exported - expected).max()))
    finally:
        encoder.train(was_training)
    report = ParityReport(
        min_cosine=float(np.concatenate(cosines).min()),
        max_abs_difference=max_abs_difference,
        batch_sizes=tuple(batch_sizes),
        clip_length=clip_length,
    )
    if report.min_cosine < min_cosine:
        raise ParityError(
            f"{path}: ONNX vs torch cosine {report.min_cosine:.6f} < {min_cosine} "
            f"(batch sizes {report.batch_sizes}, T={clip_length})"
        )
    return report


def export_encoder(
    encoder: nn.Module,
    path: Path,
    metadata: EncoderMetadata,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_clip_length: bool | None = None,
    source: str = "",
    parity_batch_sizes: Sequence[int] = (1, 2),
    input_format: InputFormat = FLOAT_CLIPS,
) -> ExportedEncoderMetadata:
    """Export ``encoder`` to ``path`` as ONNX, with metadata, checked by ``onnx.checker``.

    Args:
        encoder: a clip encoder following ``reid_models.contract``; traced in eval mode (its
            mode is restored afterwards).
        path: the ONNX file to write (atomically).
        metadata: the encoder's description (``reid_models.factory.describe_encoder``); its
            ``clip_length`` is the traced ``T``.
        opset: ONNX opset, at least :data:`MINIMUM_OPSET`.
        dynamic_clip_length: ``None`` probes whether a dynamic ``T`` gives the same
            embeddings as torch and falls back to a fixed ``T``; ``True`` requires it (raises
            if the probe fails); ``False`` fixes ``T``.
        source: where the weights came from, recorded in the metadata.
        parity_batch_sizes: batch sizes of the parity check after export; empty skips it.
        input_format: ``"float32_rgb"`` (input ``clips``, the encoder's own contract) or
            ``"uint8_bgr"`` (input ``crops``: uint8 BGR ``(batch, T, H, W, 3)``, converted
            inside the graph by :class:`~reid_models.contract.CropsInput`).

    Returns:
        The metadata written into the file.

    Raises:
        ValueError: opset below the minimum, an unknown ``input_format``, or
            ``dynamic_clip_length=True`` for a model whose graph cannot take another ``T``.
        ParityError: the exported graph differs from torch.
    """
    import onnx

    if opset < MINIMUM_OPSET:
        raise ValueError(f"opset {opset} < {MINIMUM_OPSET}")
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    input_name = CROPS_INPUT_NAME if input_format == UINT8_CROPS else INPUT_NAME
    was_training = encoder.training
    encoder.eval()
    # eval before tracing, so that the exporter's own train/eval switch leaves it alone
    graph_module = CropsInput(encoder).eval() if input_format == UINT8_CROPS else encoder
    try:
        sample = torch.from_numpy(
            _random_inputs(
                input_format,
                2,
                metadata.clip_length,
                metadata.input_height,
                metadata.input_width,
                7,
            )
        )
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as scratch:
            traced_path = Path(scratch) / "traced.onnx"
            dynamic = dynamic_clip_length is not False
            if dynamic:
                try:
                    _trace_to_onnx(
                        graph_module, traced_path, sample, opset, dynamic_clip_length=True
                    )
                except Exception as error:  # the exporter raises many types; retried fixed
                    first_line = (str(error).splitlines() or [type(error).__name__])[0]
                    works, reason = False, f"export with a dynamic T failed ({first_line[:300]})"
                else:
                    works, reason = _dynamic_clip_length_works(
                        encoder,
                        traced_path,
                        metadata.clip_length,
                        metadata.input_height,
                        metadata.input_width,
                        input_format,
                    )
                if not works and dynamic_clip_length:
                    raise ValueError(f"{metadata.architecture}: dynamic T not possible: {reason}")
                if not works:
                    logger.info(
                        "%s: fixed T=%d in the ONNX graph: %s",
                        metadata.architecture,
                        metadata.clip_length,
                        reason,
                    )
                    dynamic = False
            if not dynamic:
                _trace_to_onnx(graph_module, traced_path, sample, opset, dynamic_clip_length=False)
            described = {
                key: value
                for key, value in metadata.model_dump().items()
                if key in EncoderMetadata.model_fields
            }
            exported = ExportedEncoderMetadata(
                **described,
                opset=opset,
                dynamic_clip_length=dynamic,
                source_sha256=state_dict_sha256(encoder),
                source=source,
                input_name=input_name,
                torch_version=torch.__version__,
                input_format=input_format,
            )
            model = onnx.load(str(traced_path))
            onnx.helper.set_model_props(model, _metadata_props(exported))
            described_input = (
                f"uint8 {exported.input_shape()} BGR in [0, 255] (conversion and "
                "normalisation inside the graph)"
                if input_format == UINT8_CROPS
                else f"float32 {exported.input_shape()} RGB in [0, 1] (normalisation inside "
                "the graph)"
            )
            model.doc_string = (
                f"crosscam {exported.architecture} clip encoder: input {input_name} "
                f"{described_input}, output {OUTPUT_NAME} float32 "
                f"[batch, {exported.embedding_dim}] L2-normalised"
            )
            onnx.checker.check_model(model, full_check=True)
            partial_path = Path(scratch) / "final.onnx"
            onnx.save(model, str(partial_path))
            os.replace(partial_path, path)
    finally:
        encoder.train(was_training)
    if parity_batch_sizes:
        report = check_parity(encoder, path, parity_batch_sizes)
        logger.info(
            "exported %s to %s (opset %d, %s input, T %s): parity cosine >= %.6f",
            exported.architecture,
            path,
            opset,
            input_format,
            "dynamic" if exported.dynamic_clip_length else exported.clip_length,
            report.min_cosine,
        )
    return exported


def export_named_encoder(
    model: str,
    weights: Path | None = None,
    *,
    backbone: str = "osnet_x0_25",
    clip_length: int | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_clip_length: bool | None = None,
    cache_dir: Path | None = None,
    force: bool = False,
    input_format: InputFormat = FLOAT_CLIPS,
) -> Path:
    """Build encoder ``model`` (``reid_models.factory``) and export it into the cache.

    The file name carries the architecture, backbone, ``T``, opset, ``-u8`` for a uint8-input
    graph and the first 12 hex digits of the weights' sha256, so an existing export of the
    same weights and input format is reused (unless ``force``).

    Args:
        model: a registered encoder name.
        weights: as for ``reid_models.factory.build_encoder``; an encoder file's metadata
            decides the backbone and the default ``clip_length``.
        clip_length: traced ``T``; ``None`` = the encoder file's, else 8.
        cache_dir: cache root; ``None`` = ``engines.cache.default_cache_dir()``.
        input_format: the graph's input (:func:`export_encoder`). The default stays float
            clips: :meth:`engines.base.Engine.infer`'s callers outside the pipeline's clip
            buffer (``backend: auto``'s timing, benchmarks, tools, tests) hand float clips to
            engines loaded by model name.

    Returns:
        Path of the ONNX file.
    """
    training_data = ""
    if weights is not None and is_encoder_checkpoint(Path(weights)):
        checkpoint_metadata = read_encoder_metadata(Path(weights))
        backbone = checkpoint_metadata.backbone
        training_data = checkpoint_metadata.training_data
        if clip_length is None:
            clip_length = checkpoint_metadata.clip_length
    clip_length = DEFAULT_CLIP_LENGTH if clip_length is None else clip_length
    encoder = build_encoder(model, weights, backbone=backbone)
    checksum = state_dict_sha256(encoder)
    folder = (default_cache_dir() if cache_dir is None else Path(cache_dir)) / "onnx"
    format_tag = "-u8" if input_format == UINT8_CROPS else ""
    path = folder / (
        f"{model}-{backbone}-T{clip_length}-opset{opset}{format_tag}-{checksum[:12]}.onnx"
    )
    if path.exists() and not force:
        existing = read_onnx_metadata(path)
        if existing.source_sha256 == checksum and existing.input_format == input_format:
            logger.info("reusing exported %s: %s", model, path)
            return path
    metadata = describe_encoder(
        encoder, model, backbone, clip_length=clip_length, training_data=training_data
    )
    export_encoder(
        encoder,
        path,
        metadata,
        opset=opset,
        dynamic_clip_length=dynamic_clip_length,
        source=Path(weights).name if weights is not None else "bundled default",
        input_format=input_format,
    )
    return path


def onnx_path_for_spec(spec: EngineSpec) -> Path:
    """The ONNX file an engine spec names: ``spec.weights`` when it is one (its own metadata
    says its input format), else an export of ``spec.model`` into the cache (options
    ``backbone``, ``clip_length``, ``opset``, ``cache_dir``, ``input_format`` as in
    :func:`export_named_encoder`)."""
    if spec.weights is not None and Path(spec.weights).suffix.lower() == ".onnx":
        return Path(spec.weights)
    options = spec.options
    cache_dir = options.get("cache_dir")
    clip_length = options.get("clip_length")
    return export_named_encoder(
        spec.model,
        spec.weights,
        backbone=str(options.get("backbone", "osnet_x0_25")),
        clip_length=None if clip_length is None else int(clip_length),
        opset=int(options.get("opset", DEFAULT_OPSET)),
        cache_dir=None if cache_dir is None else Path(cache_dir),
        input_format=input_format_option(options),
    )


def input_format_option(options: dict[str, Any]) -> InputFormat:
    """The ``input_format`` engine option (default float clips), checked.

    Raises:
        ValueError: not one of :data:`reid_models.clip_input.INPUT_FORMATS`.
    """
    value = options.get("input_format", FLOAT_CLIPS)
    for input_format in INPUT_FORMATS:
        if value == input_format:
            return input_format
    raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {value!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="encoder name (reid_models.factory)")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--backbone", default="osnet_x0_25")
    parser.add_argument("--clip-length", type=int, default=None, help="traced T (default 8)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--force", action="store_true", help="export even if cached")
    parser.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default=FLOAT_CLIPS,
        help="float32_rgb: float clips (batch, T, 3, H, W); uint8_bgr: the camera crops "
        "(batch, T, H, W, 3), converted inside the graph",
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = export_named_encoder(
        arguments.model,
        arguments.weights,
        backbone=arguments.backbone,
        clip_length=arguments.clip_length,
        opset=arguments.opset,
        cache_dir=arguments.cache_dir,
        force=arguments.force,
        input_format=arguments.input_format,
    )
    logger.info("ONNX file: %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
