"""The identity layer: one global identity per person across all cameras.

What the rest of crosscam uses of it (everything else is internal to the package):

- clip by clip, online: :class:`IdentityService` (the stages' entry point: tracks started and
  ended, embedded clips in, events out) over :class:`IdentityMatcher` (the gallery: matching,
  merges, splits, topology rules; :mod:`.matching`, :mod:`.gallery`, :mod:`.splits`,
  :mod:`.rules`, :mod:`.topology`), stored in and restored from Redis (:mod:`.store`);
- over whole tracks: a :class:`TrackLog` of every tracked box and clip, the pass
  :func:`refine_identities` (learned geometry, :mod:`.homography`; continuity; constrained
  clustering; :mod:`.refine`), applied while the run goes on by :class:`OnlineRefinement`
  (in a worker process, :mod:`.pass_worker`) and reconciled with the gallery
  (:func:`reconcile`);
- camera geometry: :class:`ViewHomography`, calibration files (:mod:`.calibration`) and the
  ``calibrate`` command (:mod:`.calibrate`).
"""

from pipeline.identity.calibration import known_homographies, load_calibration, save_calibration
from pipeline.identity.gallery import Identity, TrackKey
from pipeline.identity.homography import ViewHomography
from pipeline.identity.matching import EmbeddedClip, IdentityMatcher, MatchResult
from pipeline.identity.online import OnlineRefinement, reconcile
from pipeline.identity.refine import Refinement, refine_identities
from pipeline.identity.service import IdentityService
from pipeline.identity.store import restore_gallery
from pipeline.identity.track_log import TrackLog, TrackRecord

__all__ = [
    "EmbeddedClip",
    "Identity",
    "IdentityMatcher",
    "IdentityService",
    "MatchResult",
    "OnlineRefinement",
    "Refinement",
    "TrackKey",
    "TrackLog",
    "TrackRecord",
    "ViewHomography",
    "known_homographies",
    "load_calibration",
    "reconcile",
    "refine_identities",
    "restore_gallery",
    "save_calibration",
]
