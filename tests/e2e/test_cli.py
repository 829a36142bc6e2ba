"""The `motcua` command's one-shot tasks, run as a user runs them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

MOTCUA = [sys.executable, "-m", "services.cli"]


def _run(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env["MOTCUA_DATA_DIR"] = str(data_dir)
    return subprocess.run([*MOTCUA, *args], env=env, capture_output=True, text=True, timeout=120)


def test_db_upgrade_creates_the_intake_tables(tmp_path: Path) -> None:
    result = _run(["db", "upgrade"], tmp_path)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "intake.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"intake_dossiers", "intake_outbox", "alembic_version_intake"} <= tables


def test_token_create_prints_only_the_token_and_stores_its_hash(tmp_path: Path) -> None:
    result = _run(["token", "create", "--role", "clerk", "--agency", "UBND-P1"], tmp_path)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and token.startswith("mc_")
    with sqlite3.connect(tmp_path / "intake.db") as db:
        stored = db.execute("SELECT token_hash, role, agency_code FROM intake_tokens").fetchall()
    assert len(stored) == 1
    assert stored[0][1:] == ("clerk", "UBND-P1")
    assert token not in stored[0][0]


def test_clerk_token_without_agency_is_refused(tmp_path: Path) -> None:
    result = _run(["token", "create", "--role", "clerk"], tmp_path)
    assert result.returncode == 2
    assert "--agency" in result.stderr
    assert result.stdout == ""


def _in(folder: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """`motcua ARGS` run from ``folder`` with no MOTCUA_ setting but ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    return subprocess.run(
        [*MOTCUA, *args], env={**clean, **env}, cwd=folder, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_the_notifier_open_to_the_network_needs_a_callback_token(tmp_path: Path, host: str) -> None:
    result = _in(
        tmp_path,
        ["notifier", "--host", host, "--port", "1"],
        MOTCUA_KAFKA_BOOTSTRAP="127.0.0.1:1",
        MOTCUA_CALLBACK_TOKEN="",  # as docker-compose passes an unset one
    )
    assert result.returncode == 2
    assert "MOTCUA_CALLBACK_TOKEN" in result.stderr and host in result.stderr
    assert not (tmp_path / "var").exists()
