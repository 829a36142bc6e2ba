"""Issue 13, item 12: the README's tour runs as written, on any day, against `motcua up`, and
docs/api.md goes on from where it ends (issue 16, item 2).

The shell blocks of the README's "A five-minute tour", then those of docs/api.md, are taken as
they are and run in order by one bash (`set -eu -o pipefail`), in a folder laid out as the
README assumes (`.venv/bin/motcua`, `var/`), with only `localhost:8000` pointed at the test's
port."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.core.runtime.embedded_broker import free_port
from tests.e2e.test_motcua_up import MOTCUA, _ready, _wait_until
from tests.fixtures.broker import consumer_env

README = Path(__file__).resolve().parents[2] / "README.md"
API_DOC = README.parent / "docs" / "api.md"
TOUR = "A five-minute tour"


def _sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def tour_blocks() -> list[str]:
    """The ```sh blocks of the README's tour, in order."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {TOUR}\n", 1)[1].split("\n## ", 1)[0]
    return _sh_blocks(section)


def api_blocks() -> list[str]:
    """The ```sh blocks of docs/api.md, which go on in the tour's shell."""
    return _sh_blocks(API_DOC.read_text(encoding="utf-8"))


def test_the_tour_comes_first_and_is_short() -> None:
    """The two commands, then the tour: tokens, a procedure, a dossier, its SMS, the lookup."""
    text = README.read_text(encoding="utf-8")
    assert text.index("## ") == text.index(f"## {TOUR}")  # the first section
    # 150 lines for the tour and the links, and a short section for the gateways' settings.
    assert len(text.splitlines()) <= 170
    tour = "\n".join(tour_blocks())
    for step in ("token create", "/procedures", "/dossiers", "sms.jsonl", "/public/dossiers/"):
        assert step in tour, step


def _commands(block: str) -> str:
    return "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#"))


def test_the_tour_holds_no_date_that_goes_stale() -> None:
    """A literal `at` becomes a future (refused) or stale one; a literal code or appointment
    is right on one day only."""
    blocks = tour_blocks() + api_blocks()
    assert len(tour_blocks()) >= 5 and len(api_blocks()) >= 5
    tour = "\n".join(blocks)
    commands = "\n".join(_commands(b) for b in blocks)
    assert not re.search(r'"at"\s*:\s*"\d', commands), "an action's at must be computed"
    assert not re.search(r"\b[A-Z0-9-]+-20\d{6}-\d{4}\b", commands), "a dossier code is today's"
    assert not re.search(r'"(due_at|received_at)"\s*:\s*"20\d\d-', tour), "describe, not show"
    assert "…" not in commands, "a placeholder does not run"


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """`motcua up` started as the README says, in a folder with `.venv/bin` and `var/`."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    motcua = bin_dir / "motcua"
    motcua.write_text(f'#!/bin/sh\nexec {sys.executable} -m services.cli "$@"\n')
    motcua.chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env.update(consumer_env())
    env["MOTCUA_QUIET_HOURS"] = ""  # the receipt SMS must go out whatever the hour
    env["PYTHONPATH"] = str(README.parent)
    log_path = tmp_path / "motcua.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*MOTCUA, "up", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=log_file,
        )
        try:
            _wait_until(lambda: _ready(port) or proc.poll() is not None, 60, "readiness")
            assert proc.poll() is None, log_path.read_text()
            yield tmp_path, port
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_readme_tour_runs_as_written(folder: tuple[Path, int]) -> None:
    cwd, port = folder
    script = "set -eu -o pipefail\n" + "\n".join(tour_blocks() + api_blocks())
    script = script.replace("localhost:8000", f"127.0.0.1:{port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env["PYTHONPATH"] = str(README.parent)
    run = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    assert '"error"' not in run.stdout, run.stdout
    code = re.search(r'"code":\s*"(VPDK-Q1-\d{8}-\d{4})"', run.stdout)
    assert code is not None, run.stdout
    sms = cwd / "var" / "outbox" / "sms.jsonl"
    postal = cwd / "var" / "outbox" / "postal.jsonl"

    def sent() -> bool:
        texts = [json.loads(x)["text"] for x in _lines(sms)]
        return any(code[1] in t for t in texts) and bool(_lines(postal))

    _wait_until(sent, 60, "the receipt SMS and the postal order")
    (order,) = [json.loads(x) for x in _lines(postal)]
    assert order["reference"] == code[1]  # docs/api.md's `complete` of a postal return
    lookup = re.search(r'\{"code":\s*"VPDK-Q1-\d{8}-\d{4}",\s*"status":\s*"received"', run.stdout)
    assert lookup is not None, run.stdout  # the tour's public lookup, before the lifecycle


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
