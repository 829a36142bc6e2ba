"""The README's sections: each benchmark writes its own between its `BEGIN` and `END` comments
(and its row in the table at the top), with the lines every section starts with and the
formats of its figures.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def mib(kib: float) -> str:
    return f"{kib / 1024:,.1f} MiB"


def ms(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "–"
    value = seconds * 1000
    return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"


README_HEAD = """# Benchmarks

Measured figures for motcua's acceptance criteria. Each benchmark is a script in this folder
that loads realistic data into real infrastructure and writes its own section below; a re-run
replaces its section only (the text between its `BEGIN` and `END` comments) and leaves the
rest of this file alone.

| Benchmark | Script | What it shows |
| --- | --- | --- |
"""


def write_section(path: Path, name: str, text: str, row: str) -> None:
    """Replace the text between `<!-- BEGIN name -->` and `<!-- END name -->` (or append it),
    and make sure the table at the top has `row` for this script; the rest stays."""
    current = path.read_text(encoding="utf-8") if path.exists() else README_HEAD
    current = _with_row(current, f"`bench/{name}.py`", row)
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(updated, encoding="utf-8")


def _with_row(text: str, script: str, row: str) -> str:
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.startswith("|") and script in line:
            lines[index] = row
            return "\n".join(lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("| Benchmark |"))
    last = header + 1
    while last + 1 < len(lines) and lines[last + 1].startswith("|"):
        last += 1
    lines.insert(last + 1, row)
    return "\n".join(lines)


def slug(title: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def date_line(today: date) -> str:
    return f"- Date: {today.isoformat()}"


def machine_line(host: Mapping[str, str], *, speed: bool = True, shared: str = "") -> str:
    """The section's machine line: cores, CPU, RAM, OS, Python's speed, then `shared`."""
    line = f"- Machine: {host['cores']} cores ({host['cpu']}), {host['ram']} RAM, {host['os']}"
    if speed:
        line += f"; Python's speed at the end: {host['speed']}"
    return line + (f"; {shared}" if shared else "")


def load_line(load_average: tuple[float, float], note: str = "") -> str:
    return (
        f"- Load average (1 min) when the run began and ended: {load_average[0]:.2f}, "
        f"{load_average[1]:.2f}" + (f" ({note})" if note else "")
    )


def postgres_line(pg: Mapping[str, str], *settings: str, note: str = "") -> str:
    """The section's PostgreSQL line: its version and these settings (then `note`)."""
    shown = ", ".join(f"{name} {pg[name]}" for name in settings) + (f": {note}" if note else "")
    return f"- PostgreSQL {pg['version']} on the same machine, default settings ({shown})"


def command_lines(what: str, command: str) -> list[str]:
    """The command that made the section, and what it does (in parentheses)."""
    return [f"- Command, from the repository root ({what}):", "", "  ```sh", f"  {command}",
            "  ```"]  # fmt: skip
