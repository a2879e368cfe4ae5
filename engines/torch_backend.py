"""The PyTorch backend: an encoder module run eagerly under ``torch.inference_mode``."""

from __future__ import annotations

import logging

import numpy as np
import torch

from engines.base import EngineSpec

logger = logging.getLogger(__name__)


class TorchEngine:
    """Runs a ``torch.nn.Module`` encoder on CPU or CUDA.

    Input float32 ``(batch, T, 3, H, W)`` RGB in ``[0, 1]``; output float32
    ``(batch, embedding_dim)``.
    """

    name = "torch"

    def __init__(self, module: torch.nn.Module, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()

    @classmethod
    def load(cls, spec: EngineSpec) -> TorchEngine:
        """Build the encoder named by ``spec.model`` (or a saved checkpoint) on its device."""
        from reid_models.factory import build_encoder

        module = build_encoder(
            spec.model, spec.weights, backbone=str(spec.options.get("backbone", "osnet_x0_25"))
        )
        logger.info("torch engine: %s on %s", spec.model, spec.device)
        return cls(module, spec.device)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            inputs = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            outputs = self.module(inputs)
        return outputs.float().cpu().numpy()
