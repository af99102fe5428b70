"""Detector: log ingestion, streaming anomaly detection, and PostgreSQL dedup of anomalies."""
