"""Train a video ReID encoder, with the identity layer's cross-camera positives.

    python -m training.train --config configs/train/rru_stim_mined.yaml [--resume] [--set K=V]

:mod:`reid_models.train` with ``data.geometric_positives`` served: mined tracks of different
cameras that the identity layer links by geometry become one pseudo-identity
(:mod:`training.cross_camera_positives`). ``reid_models`` is the lowest layer and cannot call
the identity layer itself, so this application hands it in.
"""

from __future__ import annotations

from collections.abc import Sequence

from reid_models.train import main as train_main
from training.cross_camera_positives import geometric_tracklets


def main(argv: Sequence[str] | None = None) -> int:
    return train_main(argv, cross_camera=geometric_tracklets, program="python -m training.train")


if __name__ == "__main__":
    raise SystemExit(main())
