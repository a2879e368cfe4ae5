"""crosscam, the installable command: ``crosscam run|check|inspect|calibrate`` (:mod:`.cli`).

The pipeline itself lives in the ``pipeline``, ``engines`` and ``reid_models`` packages; this
package is the application on top of them, a thin front for ``run.py``.
"""
