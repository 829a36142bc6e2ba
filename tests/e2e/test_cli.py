"""The `motcua` command's one-shot tasks, run as a user runs them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

MOTCUA = [sys.executable, "-m", "services.cli"]


def _run(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env["MOTCUA_DATA_DIR"] = str(data_dir)
    return subprocess.run([*MOTCUA, *args], env=env, capture_output=True, text=True, timeout=120)


def test_version_is_the_installed_one(tmp_path: Path) -> None:
    result = _run(["--version"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"motcua {version('motcua')}"


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


def test_token_create_says_on_stderr_which_database_it_wrote(tmp_path: Path) -> None:
    result = _run(["token", "create", "--role", "admin"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"token written to {(tmp_path / 'intake.db').resolve()}" in result.stderr
    assert "new" in result.stderr  # the first token made the database: say so
    again = _run(["token", "create", "--role", "admin"], tmp_path)
    assert "new" not in again.stderr and again.stdout.startswith("mc_")


def test_data_dir_is_taken_before_or_after_the_command(tmp_path: Path) -> None:
    for n, args in enumerate(
        [
            ["token", "create", "--data-dir", "a", "--role", "admin"],
            ["--data-dir", "b", "token", "create", "--role", "admin"],
            ["token", "create", "--role", "admin", "--data-dir", "c"],
            ["--data-dir", "d", "db", "upgrade"],
            ["db", "upgrade", "--data-dir", "e"],
        ]
    ):
        result = _in(tmp_path, args)
        assert result.returncode == 0, (args, result.stderr)
        assert (tmp_path / "abcde"[n] / "intake.db").exists(), args
    assert not (tmp_path / "var").exists()  # nothing went to the default folder
    twice = _in(tmp_path, ["--data-dir", "a", "token", "list", "--data-dir", "b"])
    assert twice.returncode == 2 and "--data-dir given twice" in twice.stderr
    same = _in(tmp_path, ["--data-dir", "a", "token", "list", "--data-dir", "./a/"])
    assert same.returncode == 0, same.stderr


def test_token_list_and_revoke(tmp_path: Path) -> None:
    clerk_args = ["--role", "clerk", "--agency", "UBND-P1", "--name", "Chị Lan"]
    made = _run(["token", "create", *clerk_args], tmp_path)
    admin = _run(["token", "create", "--role", "admin"], tmp_path)
    secrets = {made.stdout.strip(), admin.stdout.strip()}
    with sqlite3.connect(tmp_path / "intake.db") as db:
        hashes = {r[0] for r in db.execute("SELECT token_hash FROM intake_tokens")}
        (clerk_id,) = db.execute("SELECT id FROM intake_tokens WHERE role = 'clerk'").fetchone()

    listed = _run(["token", "list"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    header, *rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert header == ["id", "role", "agency", "name", "created", "revoked"]
    clerk = next(r for r in rows if r[0] == clerk_id)
    assert clerk[1:4] == ["clerk", "UBND-P1", "Chị Lan"] and clerk[5] == "-"
    assert {r[1] for r in rows} == {"clerk", "admin"}
    for secret in [*secrets, *hashes]:  # never the secret, nor its hash
        assert secret not in listed.stdout and secret not in listed.stderr

    revoked = _run(["token", "revoke", clerk_id], tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.split("\t")[0] == clerk_id
    after = [line.split("\t") for line in _run(["token", "list"], tmp_path).stdout.splitlines()]
    assert [r[5] != "-" for r in after[1:] if r[0] == clerk_id] == [True]  # revoked, with when
    assert [r[5] for r in after[1:] if r[0] != clerk_id] == ["-"]  # the admin's is not
    unknown = _run(["token", "revoke", "no-such-id"], tmp_path)
    assert unknown.returncode == 1 and "no token no-such-id" in unknown.stderr


def test_token_list_and_revoke_make_no_database(tmp_path: Path) -> None:
    """From the wrong folder they say where they looked, and leave no empty database."""
    for args in (["token", "list"], ["token", "revoke", "x"]):
        result = _in(tmp_path, args)
        assert result.returncode == 2
        assert str((tmp_path / "var" / "intake.db").resolve()) in result.stderr
        assert "--data-dir" in result.stderr
    assert not (tmp_path / "var").exists()


def test_a_token_for_an_agency_nobody_set_up_is_made_with_a_warning(tmp_path: Path) -> None:
    assert _run(["db", "upgrade"], tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "intake.db") as db:
        db.execute(
            "INSERT INTO intake_agencies (code, name, office_schedule, created_at) "
            "VALUES ('UBND-P1', 'UBND phường 1', '{}', '2026-11-16 09:00:00')"
        )
    known = _run(["token", "create", "--role", "clerk", "--agency", "UBND-P1"], tmp_path)
    assert known.returncode == 0 and "warning" not in known.stderr
    typo = _run(["token", "create", "--role", "clerk", "--agency", "UBND-PI"], tmp_path)
    assert typo.returncode == 0 and typo.stdout.startswith("mc_")
    assert "warning: agency UBND-PI has no procedure and no record" in typo.stderr
    with sqlite3.connect(tmp_path / "intake.db") as db:
        assert db.execute("SELECT count(*) FROM intake_tokens").fetchone() == (2,)


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
