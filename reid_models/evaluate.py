"""Evaluate clip encoders on mined tracklets (and on published datasets) with CMC and mAP.

    python -m reid_models.evaluate --index runs/mined/bundled/index.json \
        --encoder tp --encoder assets/weights/rru_stim_osnet_mined.pt \
        --encoder assets/weights/drsta_osnet_mined.pt --out reid_models/RESULTS.md
    python -m reid_models.evaluate --dataset mars --root /data/MARS --encoder FILE

Every tracklet becomes one clip of the encoder's ``T`` frames chosen by the pipeline's own
sampling policy (``evenly``), embedded in eval mode; distances are cosine; CMC rank-1/5/10 and
mAP follow the MARS/Market protocol (gallery entries of the query's identity *and* camera are
removed), computed by the NumPy reference ``reid_models.evaluate_metrics``.

Protocols on a mined index:

- ``cross-camera, held out``: tracklets of the later-in-time ``test`` split that carry a
  ground-truth person (the index was mined with ``--gt``) and whose boxes agree on that person
  (``person_share >= 0.5``); camera A's tracklets query camera B's and the reverse, for every
  ordered pair of labelled cameras; the table gives the mean over the directions.
- ``cross-camera, all footage``: the same over the whole sequence; this includes the footage
  the mined encoders were trained on (their pseudo-labels never saw a person label, but the
  crops are the same), so it is reported separately.
- ``later-in-time, pseudo-labels``: every camera's ``test`` tracks with enough crops; the first
  third of a track queries a gallery of the last thirds of all tracks (same camera, a gap in
  time in between); identity = the track. Fragmented tracks of one person count as different
  identities here, which lowers every encoder's score alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from reid_models.contract import INPUT_HEIGHT, INPUT_WIDTH
from reid_models.datasets import Tracklet, VideoReidSplit, read_rgb_image
from reid_models.evaluate_metrics import RetrievalMetrics, evaluate_retrieval, pairwise_distances
from reid_models.factory import DEFAULT_CLIP_LENGTH, build_encoder, current_git_commit, load_encoder
from reid_models.mined_index import MinedIndex, MinedTracklet, read_index
from reid_models.sampling import SamplingMode, sample_clip_indices

logger = logging.getLogger("reid_models.evaluate")

MIN_PERSON_SHARE = 0.5
MIN_THIRD_FRAMES = 4
EMBED_BATCH = 16


@dataclass(frozen=True)
class NamedEncoder:
    """An encoder in eval mode, a display name, and the ``T`` it expects."""

    name: str
    module: nn.Module
    clip_length: int


@dataclass(frozen=True)
class Protocol:
    """Query and gallery tracklets of one evaluation, identity and camera labels included."""

    name: str
    query: tuple[Tracklet, ...]
    gallery: tuple[Tracklet, ...]


def load_named_encoder(spec: str) -> NamedEncoder:
    """``tp`` / ``rru_stim`` / ``drsta`` (built with bundled weights) or an encoder file."""
    path = Path(spec)
    if path.suffix in (".pt", ".pth") or path.exists():
        if not path.is_file():
            raise ValueError(f"encoder file not found: {path} (train it or pass tp)")
        module, metadata = load_encoder(path)
        return NamedEncoder(f"{metadata.architecture} ({path.name})", module, metadata.clip_length)
    return NamedEncoder(spec, build_encoder(spec), DEFAULT_CLIP_LENGTH)


@torch.no_grad()
def embed_tracklets(
    encoder: NamedEncoder,
    tracklets: Sequence[Tracklet],
    image_size: tuple[int, int] = (INPUT_HEIGHT, INPUT_WIDTH),
) -> np.ndarray:
    """Float32 ``(len(tracklets), D)`` L2-normalised embeddings, one clip per tracklet."""
    features = []
    for start in range(0, len(tracklets), EMBED_BATCH):
        clips = []
        for tracklet in tracklets[start : start + EMBED_BATCH]:
            indices = sample_clip_indices(
                len(tracklet.image_paths), encoder.clip_length, SamplingMode.EVENLY
            )
            frames = [read_rgb_image(tracklet.image_paths[int(i)], image_size) for i in indices]
            clips.append(np.stack(frames))
        output = encoder.module(torch.from_numpy(np.stack(clips)))
        features.append(output.numpy())
    return np.concatenate(features) if features else np.zeros((0, 1), np.float32)


def evaluate_protocol(
    encoder: NamedEncoder,
    protocol: Protocol,
    embedded: dict[tuple[Path, ...], np.ndarray] | None = None,
) -> RetrievalMetrics:
    """CMC/mAP of one encoder on one protocol (cosine distance).

    ``embedded``: embeddings already computed, keyed by a tracklet's crop files (filled in),
    so that a tracklet shared by several protocols is embedded once.
    """
    embedded = {} if embedded is None else embedded
    missing = [
        t
        for t in {t.image_paths: t for t in (*protocol.query, *protocol.gallery)}.values()
        if t.image_paths not in embedded
    ]
    for tracklet, feature in zip(missing, embed_tracklets(encoder, missing), strict=True):
        embedded[tracklet.image_paths] = feature
    query = np.stack([embedded[t.image_paths] for t in protocol.query])
    gallery = np.stack([embedded[t.image_paths] for t in protocol.gallery])
    return evaluate_retrieval(
        pairwise_distances(query, gallery, metric="cosine"),
        np.array([t.identity for t in protocol.query]),
        np.array([t.identity for t in protocol.gallery]),
        np.array([t.camera for t in protocol.query]),
        np.array([t.camera for t in protocol.gallery]),
    )


def _person_tracklets(index: MinedIndex, tracklets: Sequence[MinedTracklet]) -> list[Tracklet]:
    labelled = [t for t in tracklets if t.person is not None and t.person_share >= MIN_PERSON_SHARE]
    return index.as_tracklets(labelled, label="person")


def cross_camera_protocols(index: MinedIndex, held_out_only: bool) -> list[Protocol]:
    """One protocol per ordered pair of cameras that have person-labelled tracklets."""
    chosen = [t for t in index.tracklets if not held_out_only or t.split == "test"]
    tracklets = _person_tracklets(index, chosen)
    cameras = sorted({tracklet.camera for tracklet in tracklets})
    label = "held out" if held_out_only else "all footage"
    protocols = []
    for query_camera in cameras:
        for gallery_camera in cameras:
            if query_camera == gallery_camera:
                continue
            protocols.append(
                Protocol(
                    f"cross-camera, {label}: camera {query_camera} -> {gallery_camera}",
                    tuple(t for t in tracklets if t.camera == query_camera),
                    tuple(t for t in tracklets if t.camera == gallery_camera),
                )
            )
    return protocols


def later_in_time_protocol(index: MinedIndex) -> Protocol:
    """First thirds of the held-out tracks query the last thirds (see the module docstring)."""
    by_track: dict[tuple[int, int], list[MinedTracklet]] = {}
    for tracklet in index.tracklets:
        if tracklet.split == "test":
            by_track.setdefault((tracklet.camera, tracklet.track), []).append(tracklet)
    query: list[Tracklet] = []
    gallery: list[Tracklet] = []
    for number, (_, pieces) in enumerate(sorted(by_track.items())):
        paths = [
            path
            for piece in sorted(pieces, key=lambda p: p.segment)
            for path in index.image_paths(piece)
        ]
        third = len(paths) // 3
        if third < MIN_THIRD_FRAMES:
            continue
        camera = pieces[0].camera
        # Query and gallery halves get different camera labels so that the protocol's
        # same-camera removal keeps the true match (it is the same camera, later in time).
        query.append(Tracklet(tuple(paths[:third]), number, 2 * camera))
        gallery.append(Tracklet(tuple(paths[-third:]), number, 2 * camera + 1))
    return Protocol("later-in-time, pseudo-labels", tuple(query), tuple(gallery))


def split_protocol(name: str, split: VideoReidSplit) -> Protocol:
    """A published dataset's query/gallery split."""
    return Protocol(name, split.query, split.gallery)


def metrics_row(metrics: Sequence[RetrievalMetrics]) -> dict[str, float]:
    """Mean of rank-1/5/10 and mAP over several directions, in percent."""
    return {
        "rank1": round(100 * float(np.mean([m.rank1 for m in metrics])), 1),
        "rank5": round(100 * float(np.mean([m.rank5 for m in metrics])), 1),
        "rank10": round(100 * float(np.mean([m.rank10 for m in metrics])), 1),
        "mAP": round(100 * float(np.mean([m.mean_average_precision for m in metrics])), 1),
    }


def evaluate_index(index: MinedIndex, encoders: Sequence[NamedEncoder]) -> dict[str, Any]:
    """Every protocol of a mined index for every encoder."""
    groups: dict[str, list[Protocol]] = {
        "cross-camera, held out": cross_camera_protocols(index, held_out_only=True),
        "cross-camera, all footage": cross_camera_protocols(index, held_out_only=False),
        "later-in-time, pseudo-labels": [later_in_time_protocol(index)],
    }
    results: dict[str, Any] = {"protocols": {}, "rows": []}
    for group, protocols in groups.items():
        protocols = [p for p in protocols if p.query and p.gallery]
        results["protocols"][group] = [
            {"name": p.name, "queries": len(p.query), "gallery": len(p.gallery)} for p in protocols
        ]
    for encoder in tqdm(encoders, desc="encoders", unit="encoder"):
        embedded: dict[tuple[Path, ...], np.ndarray] = {}
        for group, protocols in groups.items():
            protocols = [p for p in protocols if p.query and p.gallery]
            if not protocols:
                continue
            metrics = [evaluate_protocol(encoder, protocol, embedded) for protocol in protocols]
            results["rows"].append(
                {"encoder": encoder.name, "protocol": group, **metrics_row(metrics)}
            )
    return results


def markdown_table(results: dict[str, Any]) -> str:
    """Rows grouped by protocol, best mAP in bold."""
    lines = []
    for group, protocols in results["protocols"].items():
        rows = [row for row in results["rows"] if row["protocol"] == group]
        if not rows:
            continue
        sizes = "; ".join(f"{p['queries']} queries / {p['gallery']} gallery" for p in protocols)
        lines += [f"### {group}", "", f"{len(protocols)} direction(s): {sizes}.", ""]
        lines += ["| encoder | rank-1 | rank-5 | rank-10 | mAP |", "|---|---:|---:|---:|---:|"]
        best = max(row["mAP"] for row in rows)
        for row in rows:
            mean_ap = f"**{row['mAP']:.1f}**" if row["mAP"] == best else f"{row['mAP']:.1f}"
            lines.append(
                f"| {row['encoder']} | {row['rank1']:.1f} | {row['rank5']:.1f} | "
                f"{row['rank10']:.1f} | {mean_ap} |"
            )
        lines.append("")
    return "\n".join(lines)


def machine_line() -> str:
    return (
        f"{platform.node()} ({platform.machine()}, {torch.get_num_threads()} torch threads), "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"commit {current_git_commit() or 'unknown'}"
    )


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m reid_models.evaluate", description=__doc__)
    parser.add_argument("--index", type=Path, help="mined index.json")
    parser.add_argument("--dataset", choices=["mars", "ilids_vid", "prid2011"])
    parser.add_argument("--root", type=Path, help="published dataset root")
    parser.add_argument("--encoder", action="append", required=True, help="tp or encoder file")
    parser.add_argument("--out", type=Path, help="markdown table to write (JSON beside it)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if (arguments.index is None) == (arguments.dataset is None):
        logger.error("give either --index (mined tracklets) or --dataset with --root")
        return 2
    try:
        encoders = [load_named_encoder(spec) for spec in arguments.encoder]
        if arguments.index is not None:
            results = evaluate_index(read_index(arguments.index), encoders)
        else:
            results = evaluate_published(arguments.dataset, arguments.root, encoders)
    except (ValueError, OSError) as error:
        logger.error("%s", error)
        return 2
    results["machine"] = machine_line()
    table = markdown_table(results)
    sys.stdout.write(table + "\n")
    if arguments.out is not None:
        arguments.out.parent.mkdir(parents=True, exist_ok=True)
        arguments.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
        write_results(arguments.out, table, results["machine"], argv or sys.argv[1:])
        logger.info("wrote %s and %s", arguments.out, arguments.out.with_suffix(".json"))
    return 0


RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"


def write_results(path: Path, table: str, machine: str, argv: Sequence[str]) -> None:
    """Write the table into ``path`` between the results markers, keeping the text around
    them (a new file gets just the markers and the table)."""
    command = "python -m reid_models.evaluate " + " ".join(argv)
    write_between_markers(
        path, RESULTS_START, RESULTS_END, f"Measured on {machine}.\n\n`{command}`\n\n{table}"
    )


def write_between_markers(path: Path, start: str, end: str, body: str) -> None:
    """Put ``body`` between the ``start`` and ``end`` marker lines of ``path``, keeping the
    text around them; a file without the markers gets them (and ``body``) appended."""
    block = f"{start}\n{body}{end}"
    text = path.read_text() if path.is_file() else ""
    if start in text and end in text:
        before, _, rest = text.partition(start)
        _, _, after = rest.partition(end)
        text = before + block + after
    else:
        text = text + block + "\n"
    path.write_text(text)


def evaluate_published(
    dataset: str, root: Path | None, encoders: Sequence[NamedEncoder]
) -> dict[str, Any]:
    """MARS / iLIDS-VID / PRID2011 query-gallery evaluation."""
    from reid_models.datasets import load_ilids_vid, load_mars, load_prid2011

    if root is None:
        raise ValueError(f"--dataset {dataset} needs --root (the dataset's folder)")
    loaders = {"mars": load_mars, "ilids_vid": load_ilids_vid, "prid2011": load_prid2011}
    protocol = split_protocol(dataset, loaders[dataset](root))
    results: dict[str, Any] = {
        "protocols": {
            dataset: [
                {"name": dataset, "queries": len(protocol.query), "gallery": len(protocol.gallery)}
            ]
        },
        "rows": [],
    }
    for encoder in encoders:
        row = metrics_row([evaluate_protocol(encoder, protocol)])
        results["rows"].append({"encoder": encoder.name, "protocol": dataset, **row})
    return results


if __name__ == "__main__":
    raise SystemExit(main())
