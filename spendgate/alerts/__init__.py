"""Anomaly detection and alert delivery: detector (pure), channels, delivery with retries, the loop."""
