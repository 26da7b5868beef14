"""Confidence calibration and uncertainty (seed 001 §5; docs/calibration.md). Pure maths
modules, no I/O: ``calibrator`` (ECE, MCE, Brier, the reliability table, and the bucket,
isotonic, Platt and online calibrators), ``conformal`` (intervals), ``thresholds``
(confidence levels and the dynamic threshold); ``cli`` is `edgebus calibrate`."""
