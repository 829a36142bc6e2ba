"""Settings from the environment (prefix MOTCUA_), as CONTRACT.md lists them."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = Literal["intake", "tracker", "notifier"]
SERVICES: tuple[ServiceName, ...] = ("intake", "tracker", "notifier")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_", extra="ignore")

    data_dir: Path = Path("./var")
    database_url: str | None = None
    intake_database_url: str | None = None
    tracker_database_url: str | None = None
    notifier_database_url: str | None = None
    kafka_bootstrap: str | None = None
    kafka_partitions: int = Field(default=3, ge=1)
    sms_gateway_url: str | None = None
    postal_api_url: str | None = None
    scan_interval_seconds: float = Field(default=60, gt=0)
    due_soon_working_hours: int = Field(default=8, ge=0, le=800)
    quiet_hours: str = "21:00-07:00"
    sms_unicode: bool = False
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    public_lookup_per_minute: int = Field(default=30, ge=1)
    db_pool_size: int = Field(default=10, ge=1)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_shape(cls, value: str) -> str:
        if value and not _is_hhmm_range(value):
            raise ValueError("MOTCUA_QUIET_HOURS must look like 21:00-07:00, or be empty")
        return value

    def database_url_for(self, service: ServiceName) -> str:
        specific: str | None = getattr(self, f"{service}_database_url")
        if specific:
            return specific
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    @cached_property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"


def _is_hhmm_range(value: str) -> bool:
    parts = value.split("-")
    if len(parts) != 2:
        return False
    for part in parts:
        hh, _, mm = part.partition(":")
        if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
            return False
    return True
