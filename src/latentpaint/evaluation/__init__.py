"""Scoring trained models: experiments, reports, tables and the OpenCV floor; the metrics live in latentpaint.metrics."""
