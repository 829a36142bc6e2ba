"""docker-compose.yml says what the code reads: each service's command is one the `motcua`
CLI accepts, each MOTCUA_ variable is a setting that parses, every topic is created with the
configured partitions. (No Docker engine here: the same commands run as plain processes in
the e2e tests.) The documentation names only real settings too, and docs/configuration.md
lists every one."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import _db_upgrade, _notifier_callback_token, _one_service, _parser
from services.core.runtime.kafka import ALL_TOPICS
from services.core.runtime.settings import Settings
from services.notifier.callback_token import is_loopback

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ENV_DEFAULT = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")


def env_of(service: str) -> dict[str, str]:
    """The service's environment with `${VAR:-default}` read as its default."""
    raw = SERVICES[service].get("environment", {})
    return {k: ENV_DEFAULT.sub(r"\1", str(v)) for k, v in raw.items()}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in [k for k in os.environ if k.startswith("MOTCUA_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_the_production_shape_is_there() -> None:
    assert {"kafka", "kafka-topics", "postgres", "migrate", "intake", "tracker", "notifier"} <= set(
        SERVICES
    )
    assert "controller" in SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    assert any("postgresql/data" in v for v in SERVICES["postgres"]["volumes"])
    for name in ("migrate", "intake", "tracker", "notifier"):
        assert SERVICES[name]["build"] == "."  # one image
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["motcua"]' in dockerfile


@pytest.mark.parametrize("name", ["intake", "tracker", "notifier"])
def test_each_service_runs_a_command_the_cli_accepts_and_is_checked_on_readyz(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = SERVICES[name]
    args = _parser().parse_args(service["command"])
    assert args.run is _one_service and args.service == name
    assert args.host == "0.0.0.0"
    check = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{args.port}/readyz" in check
    needs = service["depends_on"]
    assert needs["migrate"]["condition"] == "service_completed_successfully"
    assert needs["kafka-topics"]["condition"] == "service_completed_successfully"
    settings = settings_from(env_of(name), monkeypatch)
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.database_url_for(name).startswith("postgresql+asyncpg://")


def test_the_notifier_open_to_the_network_takes_its_callback_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The compose notifier listens on 0.0.0.0, so it starts only with MOTCUA_CALLBACK_TOKEN,
    which comes from the operator's environment: no secret is written in the file."""
    notifier = SERVICES["notifier"]
    host = _parser().parse_args(notifier["command"]).host
    assert not is_loopback(host)
    assert str(notifier["environment"]["MOTCUA_CALLBACK_TOKEN"]).startswith(
        "${MOTCUA_CALLBACK_TOKEN"
    )
    env = {**env_of("notifier"), "MOTCUA_DATA_DIR": str(tmp_path)}
    assert _notifier_callback_token(settings_from(env, monkeypatch), host) is None  # unset
    env["MOTCUA_CALLBACK_TOKEN"] = "a-long-random-secret-from-the-environment"
    started = _notifier_callback_token(settings_from(env, monkeypatch), host)
    assert started is not None and started.callback_token == env["MOTCUA_CALLBACK_TOKEN"]
    assert not (tmp_path / "callback_token").exists()


def test_the_migration_is_one_shot_db_upgrade() -> None:
    migrate = SERVICES["migrate"]
    assert _parser().parse_args(migrate["command"]).run is _db_upgrade
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_motcua_variable_is_a_setting_that_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {f"MOTCUA_{name.upper()}" for name in Settings.model_fields}
    for name in SERVICES:
        env = env_of(name)
        unknown = {k for k in env if k.startswith("MOTCUA_")} - fields
        assert not unknown, f"{name} sets variables the code never reads: {unknown}"
        if any(k.startswith("MOTCUA_") for k in env):
            settings_from(env, monkeypatch)  # raises on a value the code would refuse


def test_every_topic_is_created_with_the_configured_partitions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = " ".join(SERVICES["kafka-topics"]["command"])
    created = set(re.search(r"for t in (.*?);", script, re.S).group(1).split())  # type: ignore[union-attr]
    assert created == set(ALL_TOPICS)
    partitions = int(re.search(r"--partitions (\d+)", script).group(1))  # type: ignore[union-attr]
    assert partitions == settings_from(env_of("intake"), monkeypatch).kafka_partitions


SETTINGS = {f"MOTCUA_{name.upper()}" for name in Settings.model_fields}
TEST_ONLY = {"MOTCUA_TEST_POSTGRES_URL", "MOTCUA_TEST_KAFKA_BOOTSTRAP"}
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_documentation_names_only_real_settings() -> None:
    for doc in DOCS:
        named = set(re.findall(r"`(MOTCUA_[A-Z_]+)", doc.read_text(encoding="utf-8")))
        unknown = named - SETTINGS - TEST_ONLY
        assert not unknown, f"{doc.relative_to(ROOT)} names settings nothing reads: {unknown}"


def test_the_configuration_table_lists_every_setting_once() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = [line.split(" | ", 1)[0] for line in text.splitlines() if line.startswith("| `MOTCUA_")]
    listed = [name for row in rows for name in re.findall(r"`(MOTCUA_[A-Z_]+)`", row)]
    assert len(listed) == len(set(listed)), "a setting listed twice"
    missing, extra = sorted(SETTINGS - set(listed)), sorted(set(listed) - SETTINGS)
    assert not missing and not extra, f"undocumented: {missing}; not settings: {extra}"


def test_up_runs_two_processes_on_two_cores_unless_told() -> None:
    from services.cli import up_processes

    assert up_processes(Settings(), cores=1) == 1
    assert up_processes(Settings(), cores=2) == 2
    assert up_processes(Settings(up_processes=1), cores=8) == 1
    assert up_processes(Settings(up_processes=2), cores=1) == 2
