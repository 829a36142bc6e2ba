"""An append-only JSON-lines file that stands in for a provider in the embedded default.

Like the real providers it keeps the first answer: a key (request id, dossier reference) that
is already in the file is not written again, so a notifier that crashed between the call and
its commit and then repeats the call leaves one line, as a real gateway sends one SMS.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any


class JsonlOutbox:
    def __init__(self, path: Path, key_field: str) -> None:
        self._path = path
        self._key_field = key_field
        self._keys: set[str] | None = None  # read from the file on first use
        self._needs_newline = False
        self._lock = asyncio.Lock()  # one writer at a time: lines never interleave

    @property
    def path(self) -> Path:
        return self._path

    async def append_once(self, record: dict[str, Any]) -> bool:
        """Append ``record`` unless its key is already there; True when it was written."""
        key = str(record[self._key_field])
        async with self._lock:
            if self._keys is None:
                self._keys = await asyncio.to_thread(self._load_keys)
            if key in self._keys:
                return False
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            await asyncio.to_thread(self._append, line)
            self._keys.add(key)
            return True

    def _load_keys(self) -> set[str]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if not self._path.exists():
            return set()
        raw = self._path.read_bytes()
        # A crash mid-write can leave a torn last line: start the next record on a fresh line.
        self._needs_newline = bool(raw) and not raw.endswith(b"\n")
        keys: set[str] = set()
        for line in raw.decode("utf-8", errors="replace").splitlines():
            key = _key_of(line, self._key_field)
            if key is not None:
                keys.add(key)
        return keys

    def _append(self, line: str) -> None:
        prefix = "\n" if self._needs_newline else ""
        with self._path.open("a", encoding="utf-8") as out:
            out.write(f"{prefix}{line}\n")
            out.flush()
        self._needs_newline = False


def _key_of(line: str, field: str) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None  # the torn line: its call was never answered, so it may be written again
    value = record.get(field) if isinstance(record, dict) else None
    return str(value) if value is not None else None
