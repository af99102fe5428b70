"""Settings → the typed configuration objects of each stage (the composition root's mapping)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from detector.config import DetectorConfig
from detector.dedup import DedupConfig
from logwarden.config import ConfigError, Settings

if TYPE_CHECKING:
    from agents.job_handler import HandlerOptions


def detector_config(settings: Settings) -> DetectorConfig:
    return settings.detector


def dedup_config(settings: Settings) -> DedupConfig:
    try:
        return DedupConfig(
            window=settings.dedup_window,
            repeat_interval=settings.dedup_repeat_interval,
            max_attempts=settings.dedup_max_attempts,
            backoff_base=settings.dedup_backoff_base,
            backoff_cap=settings.dedup_backoff_cap,
            precheck=settings.dedup_precheck,
        )
    except ValueError as exc:
        raise ConfigError(f"LOGWARDEN_DEDUP_*: {exc}") from None


def handler_options(settings: Settings) -> HandlerOptions:
    from logwarden.agent_setup import worker_options

    return worker_options(settings)
