"""An append-only JSON-lines file that stands in for a provider in the embedded default.

Like the real providers it keeps the first answer: a key (request id, dossier reference) that
is already in the file is not written again, so a notifier that crashed between the call and
its commit and then repeats the call leaves one line, as a real gateway sends one SMS.

Only the last `RECENT_KEYS` keys are remembered, so memory stays flat however long the file
grows (it grew by a key a text before: about 6 MiB a minute at 1,000 dossiers a second). A
repeat only ever comes from the calls in flight when a notifier stopped (a dispatcher claims
at most a batch of 100 at a time), never from thousands of calls back.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

RECENT_KEYS = 10_000


class JsonlOutbox:
    """``answer_field``: a field of the record that is the provider's answer (a tracking
    code); the first record's is given back when its key comes again."""

    def __init__(
        self,
        path: Path,
        key_field: str,
        answer_field: str | None = None,
        recent_keys: int = RECENT_KEYS,
    ) -> None:
        self._path = path
        self._key_field = key_field
        self._answer_field = answer_field
        self._recent_keys = recent_keys
        # The last keys written → their answers, oldest first; read from the file on first use.
        self._answers: OrderedDict[str, Any] | None = None
        self._needs_newline = False
        self._lock = asyncio.Lock()  # one writer at a time: lines never interleave

    @property
    def path(self) -> Path:
        return self._path

    async def append_once(self, record: dict[str, Any]) -> bool:
        """Append ``record`` unless its key is already there; True when it was written."""
        return (await self.append_first(record))[0]

    async def append_first(self, record: dict[str, Any]) -> tuple[bool, Any]:
        """Append ``record`` unless its key is already there: (whether it was written, the
        answer field of the record kept for its key)."""
        key = str(record[self._key_field])
        async with self._lock:
            if self._answers is None:
                self._answers = await asyncio.to_thread(self._load_answers)
            if key in self._answers:
                return False, self._answers[key]
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            await asyncio.to_thread(self._append, line)
            answer = record.get(self._answer_field) if self._answer_field else None
            self._remember(self._answers, key, answer)
            return True, answer

    def _remember(self, answers: OrderedDict[str, Any], key: str, answer: Any) -> None:
        answers[key] = answer
        if len(answers) > self._recent_keys:
            answers.popitem(last=False)

    def _load_answers(self) -> OrderedDict[str, Any]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if not self._path.exists():
            return OrderedDict()
        raw = self._path.read_bytes()
        # A crash mid-write can leave a torn last line: start the next record on a fresh line.
        self._needs_newline = bool(raw) and not raw.endswith(b"\n")
        answers: OrderedDict[str, Any] = OrderedDict()
        for line in raw.decode("utf-8", errors="replace").splitlines():
            record = _record_of(line)
            key = record.get(self._key_field) if record is not None else None
            if record is not None and key is not None and str(key) not in answers:
                answer = record.get(self._answer_field) if self._answer_field else None
                self._remember(answers, str(key), answer)
        return answers

    def _append(self, line: str) -> None:
        prefix = "\n" if self._needs_newline else ""
        with self._path.open("a", encoding="utf-8") as out:
            out.write(f"{prefix}{line}\n")
            out.flush()
        self._needs_newline = False


def _record_of(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None  # the torn line: its call was never answered, so it may be written again
    return record if isinstance(record, dict) else None
