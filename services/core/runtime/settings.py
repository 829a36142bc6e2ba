"""Settings from the environment (prefix MOTCUA_), as docs/configuration.md lists them."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.core.runtime.proxies import TrustedProxies, parse_networks

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
    # `motcua up` in one process, or two (the tracker and the notifier in the second, on
    # another core: core.runtime.worker_process); 0: two when the machine has two cores.
    up_processes: int = Field(default=0, ge=0, le=2)
    # A member silent this long leaves its consumer group. Kafka refuses less than its
    # group.min.session.timeout.ms (6 s by default); Tansu, the bundled broker, holds every
    # join for half of it, so the tests use 2 s (tests/fixtures/broker.py).
    kafka_session_timeout_seconds: float = Field(default=10, gt=0)
    sms_gateway_url: str | None = None
    # Who the SMS gateway is: "generic" speaks motcua's own protocol (any provider behind an
    # adapter), "esms" eSMS's brandname API (notifier.adapters.esms), with its keys.
    sms_provider: Literal["generic", "esms"] = "generic"
    sms_api_key: SecretStr | None = None
    sms_secret_key: SecretStr | None = None
    sms_sandbox: bool = False  # the provider checks and answers, and sends nothing
    # Zalo ZNS through eSMS, SMS as the fallback (notifier.domain.channels): the office's
    # Official Account, and per notice kind the ZNS template approved for it, as JSON
    # {"received": {"template": "200607", "params": {"code": "ma_ho_so", ...}}}. Off unless
    # both are set; a ZNS without a delivery report this long is taken as failed.
    zalo_oa_id: str | None = Field(default=None, min_length=1, max_length=40)
    zalo_templates: dict[str, dict[str, object]] = Field(default_factory=dict)
    zalo_report_wait_seconds: float = Field(default=600, gt=0)
    postal_api_url: str | None = None
    # Who the postal operator is: "generic" speaks motcua's own protocol, "viettelpost" Viettel
    # Post's partner API (notifier.adapters.viettelpost), signed in with its account.
    postal_provider: Literal["generic", "viettelpost"] = "generic"
    postal_username: str | None = None
    postal_password: SecretStr | None = None
    # Which of the account's registered pickup addresses (Viettel Post's GROUPADDRESS_ID) the
    # parcels leave from; unset: the first one registered.
    postal_pickup_id: int | None = Field(default=None, ge=1)
    # Per agency, its own registered pickup address, as JSON {"VPDK-Q1": 5818802, ...}: each
    # one-stop office sends its results from its own counter. An agency not listed uses
    # postal_pickup_id.
    postal_pickup_ids: dict[str, int] = Field(default_factory=dict)
    postal_service_code: str = Field(default="VCN", min_length=1, max_length=10)
    scan_interval_seconds: float = Field(default=60, gt=0)
    due_soon_working_hours: int = Field(default=8, ge=0, le=800)
    quiet_hours: str = "21:00-07:00"
    sms_unicode: bool = False
    # -- notifier
    sms_gateway_fallback_url: str | None = None
    sms_sender: str = Field(default="MOTCUA", min_length=1, max_length=11)
    sms_rate_per_second: float = Field(default=20, ge=0)
    sms_timeout_seconds: float = Field(default=10, gt=0)
    sms_max_segments: int | None = Field(default=None, ge=1, le=10)
    sms_templates_file: Path | None = None
    sms_retry_horizon_hours: float = Field(default=24, gt=0)
    postal_rate_per_second: float = Field(default=5, ge=0)
    office_name: str = Field(default="Bộ phận Một cửa", min_length=1, max_length=20)
    # Where the texts say to look a dossier up; unset: the lookup page on public_url with the
    # dossier's code in it (services.notifier.lookup_link).
    lookup_url: str | None = Field(default=None, min_length=1, max_length=40)
    collection_place: str = Field(default="Bộ phận Một cửa", min_length=1, max_length=60)
    citizen_notice_max_age_hours: float = Field(default=24, gt=0)
    # An overdue flag is told once its dossier has had no news this long (history being
    # imported arrives event after event; notifier.domain.decisions.PendingAlert).
    alert_settle_seconds: float = Field(default=300, ge=0)
    digest_time: str = Field(default="07:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    callback_base_url: str | None = None
    # Where citizens and clerks reach the intake (scheme and host): the lookup page's address
    # in texts and on the receipt slip's QR code is built on it (services.intake.web.urls).
    public_url: str | None = None
    # The gateways' callbacks must carry it; `motcua up` makes one in the data dir when unset.
    callback_token: str | None = None
    # Where the intake reaches the notifier's internal routes (what was sent about a dossier,
    # the dashboard's failed notices); `motcua up` sets it to the process running the notifier.
    notifier_url: str | None = None
    # The shared secret of those internal routes (header X-Motcua-Internal-Token), the same on
    # the intake and the notifier; `motcua up` makes one in the data dir when unset.
    internal_token: SecretStr | None = None
    # The key of the links texted to citizens (the rating page's, services.intake.link_mac):
    # the same for the intake and the notifier; `motcua up` makes one in the data dir when
    # unset. Without it no rating link is sent, and none opens.
    link_secret: SecretStr | None = None
    # Delivery receipts for a message not recorded yet: kept this many, this long at most.
    early_receipts_max: int = Field(default=10_000, ge=1)
    early_receipt_max_age_hours: float = Field(default=24, gt=0)
    send_lease_seconds: float = Field(default=60, gt=0)
    dispatch_poll_seconds: float = Field(default=1.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    public_lookup_per_minute: int = Field(default=30, ge=1)
    # Proxies whose X-Forwarded-For is believed (comma-separated IPs or CIDRs); none by default.
    trusted_proxies: str = ""
    db_pool_size: int = Field(default=10, ge=1)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    # A request body larger than this is refused with 413 before it is read (host.BodyLimit).
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    # -- housekeeping: how long each kind of row is kept, and how often it is swept
    housekeeping_interval_seconds: float = Field(default=3600, gt=0)
    outbox_keep_days: float = Field(default=7, gt=0)
    processed_events_keep_days: float = Field(default=30, gt=0)
    idempotency_keys_keep_hours: float = Field(default=24, gt=0)
    # A notice done with (sent, delivered, failed, skipped) is kept this long after its last
    # change, with its history: long enough to answer "did the citizen get the SMS?".
    notices_keep_days: float = Field(default=90, gt=0)
    # The applicant's personal data (name, phone, ID number, e-mail, address) is erased this
    # long after the dossier is closed (returned, rejected, withdrawn): Decree 13/2023/NĐ-CP
    # sets no number, only "no longer than needed for the purpose". A year, because the
    # result may be contested for a while after it (a complaint, the review of a refusal) and
    # the office must still reach the applicant then. docs/privacy.md.
    personal_data_retention_days: float = Field(default=365, gt=0)

    @model_validator(mode="after")
    def _copies_go_first(self) -> Settings:
        # The published outbox rows (dossier.received carries the applicant) and the stored
        # answers of idempotent requests (the dossier, applicant included) are forgotten
        # whole, never erased field by field: they must be gone before the retention ends.
        if self.personal_data_retention_days <= max(
            self.outbox_keep_days, self.idempotency_keys_keep_hours / 24
        ):
            raise ValueError(
                "MOTCUA_PERSONAL_DATA_RETENTION_DAYS must be longer than MOTCUA_OUTBOX_KEEP_DAYS "
                "and MOTCUA_IDEMPOTENCY_KEYS_KEEP_HOURS: those rows carry the applicant's data"
            )
        return self

    @field_validator("callback_token")
    @classmethod
    def _no_empty_token(cls, value: str | None) -> str | None:
        # docker-compose passes an unset variable as "": that is no secret at all.
        return (value.strip() or None) if value is not None else None

    @field_validator("internal_token", "link_secret", mode="before")
    @classmethod
    def _no_empty_secret(cls, value: object) -> object:
        # As for the callback token: an unset variable passed as "" is no secret at all.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("lookup_url", "public_url", "notifier_url", mode="before")
    @classmethod
    def _empty_address_is_unset(cls, value: object) -> object:
        # As for the token: docker-compose passes an unset variable as "", no address at all.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        try:
            parse_networks(value)
        except ValueError as exc:
            raise ValueError(f"MOTCUA_TRUSTED_PROXIES: {exc}") from None
        return value

    @field_validator("postal_pickup_ids")
    @classmethod
    def _pickup_ids(cls, value: dict[str, int]) -> dict[str, int]:
        for agency, pickup in value.items():
            if not agency or pickup < 1:
                raise ValueError(f"{agency!r}: a pickup address id is a positive number")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_shape(cls, value: str) -> str:
        if value and not _is_hhmm_range(value):
            raise ValueError("MOTCUA_QUIET_HOURS must look like 21:00-07:00, or be empty")
        return value

    @model_validator(mode="after")
    def _provider_configured(self) -> Settings:
        if self.sms_provider == "esms":
            missing = [
                name
                for name, value in (
                    ("MOTCUA_SMS_GATEWAY_URL", self.sms_gateway_url),
                    ("MOTCUA_SMS_API_KEY", self.sms_api_key),
                    ("MOTCUA_SMS_SECRET_KEY", self.sms_secret_key),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"MOTCUA_SMS_PROVIDER=esms needs {', '.join(missing)}")
        if bool(self.zalo_oa_id) != bool(self.zalo_templates):
            raise ValueError("Zalo needs both MOTCUA_ZALO_OA_ID and MOTCUA_ZALO_TEMPLATES")
        if self.zalo_oa_id and self.sms_provider != "esms":
            raise ValueError("MOTCUA_ZALO_OA_ID: Zalo goes through eSMS (MOTCUA_SMS_PROVIDER=esms)")
        if self.postal_provider == "viettelpost":
            missing = [
                name
                for name, value in (
                    ("MOTCUA_POSTAL_API_URL", self.postal_api_url),
                    ("MOTCUA_POSTAL_USERNAME", self.postal_username),
                    ("MOTCUA_POSTAL_PASSWORD", self.postal_password),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"MOTCUA_POSTAL_PROVIDER=viettelpost needs {', '.join(missing)}")
        return self

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

    @property
    def link_key(self) -> str | None:
        """MOTCUA_LINK_SECRET's value; None when unset (no rating links)."""
        return self.link_secret.get_secret_value() if self.link_secret else None

    @property
    def proxies(self) -> TrustedProxies:
        # Not cached here: model_copy(update=...) would carry a cached value along unchanged.
        return TrustedProxies(parse_networks(self.trusted_proxies))


def _is_hhmm_range(value: str) -> bool:
    parts = value.split("-")
    if len(parts) != 2:
        return False
    for part in parts:
        hh, _, mm = part.partition(":")
        if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
            return False
    return True
