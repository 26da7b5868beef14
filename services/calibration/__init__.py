"""Confidence calibration (seed 001 §5; docs/calibration.md): how far a model's stated
confidence is from its hit rate (ECE, MCE, Brier, the reliability table) and the
calibrators that map a raw confidence to a calibrated one. ``calibrator`` is the pure
maths (numpy only); ``cli`` is `edgebus calibrate`."""
