"""The callbacks' secret when MOTCUA_CALLBACK_TOKEN is unset: made once in the data dir,
private, reused; and who may start without one (a notifier on loopback)."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from services.cli import _kept_callback_token, _notifier_callback_token
from services.core.runtime.settings import Settings
from services.notifier.callback_token import is_loopback, load_or_create


def test_made_once_private_and_reused(tmp_path: Path) -> None:
    token, path, made = load_or_create(tmp_path / "var")
    assert made and path == tmp_path / "var" / "callback_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (
        len(token) >= 40 and token.isascii() and token.replace("-", "").replace("_", "").isalnum()
    )
    assert load_or_create(tmp_path / "var") == (token, path, False)  # a restart
    assert list((tmp_path / "var").iterdir()) == [path]  # no temporary file left
    assert load_or_create(tmp_path / "other")[0] != token  # random, not derived


def test_a_blank_file_gets_a_token(tmp_path: Path) -> None:
    (tmp_path / "callback_token").write_text("\n")
    token, _, made = load_or_create(tmp_path)
    assert made and token and (tmp_path / "callback_token").read_text().strip() == token


def test_processes_starting_together_share_one_token(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        tokens = {t for t, _, _ in pool.map(lambda _: load_or_create(tmp_path), range(32))}
    assert len(tokens) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["callback_token"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("notifier.example.vn", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_up_and_a_loopback_notifier_use_the_data_dirs_token(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, callback_token=None)
    kept = _kept_callback_token(settings)
    assert kept.callback_token == (tmp_path / "callback_token").read_text().strip()
    assert _notifier_callback_token(settings, "127.0.0.1") == kept
    assert _notifier_callback_token(settings, "localhost") == kept


def test_a_set_token_wins_and_no_file_is_made(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, callback_token="from-the-environment-0123456789")
    assert _kept_callback_token(settings) == settings
    assert _notifier_callback_token(settings, "0.0.0.0") == settings
    assert not (tmp_path / "callback_token").exists()


def test_a_notifier_on_the_network_without_a_token_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        _notifier_callback_token(Settings(data_dir=tmp_path, callback_token=""), "0.0.0.0") is None
    )
    assert "MOTCUA_CALLBACK_TOKEN" in capsys.readouterr().err
    assert not (tmp_path / "callback_token").exists()
