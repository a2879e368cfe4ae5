"""The identity layer's geometry: camera-to-camera ground-plane homographies learned from the
footage itself (no labels, no manual calibration)."""
