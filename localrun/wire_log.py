"""Azurite's `--debug` wire log, read incrementally: the Put Message requests it records, per queue.

The log only grows while Azurite runs (a restart may start it again from empty), so each read parses only the
lines added since the last one; a run that sends thousands of messages (the fleet benchmark) would otherwise
re-parse a log of hundreds of megabytes after every delivery.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

_PUT = re.compile(
    r"RequestMethod=POST RequestURL=https?://[^/\s]+/devstoreaccount1/(?P<queue>[a-z0-9-]+)/messages"
    r"(?:\?(?P<query>\S*))?"
)
_MESSAGE_TEXT = re.compile(r'"queueMessage":\{"messageText":"(?P<text>[^"]*)"\}')
_END = re.compile(r"EndMiddleware: End response\. TotalTimeInMS=\d+ StatusCode=(?P<status>\d+)")


@dataclass(frozen=True)
class PutMessage:
    """One Put Message request as Azurite received it (and answered 201)."""

    queue: str
    visibility_timeout: int
    text: str

    def json(self) -> dict[str, object]:
        return json.loads(self.text)  # type: ignore[no-any-return]


@dataclass
class WireLog:
    path: Path
    _offset: int = 0
    _pending: dict[str, tuple[str, int]] = field(default_factory=dict)  # request id -> (queue, delay)
    _parsed: dict[str, PutMessage] = field(default_factory=dict)  # request id -> put waiting for its status
    _found: dict[str, list[PutMessage]] = field(default_factory=dict)  # queue -> accepted puts, in order
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def puts(self, queue: str) -> list[PutMessage]:
        """Every accepted Put Message on `queue` the log holds so far, in order."""
        with self._lock:
            self._read_new()
            return list(self._found.get(queue, []))

    def _read_new(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as log:
            log.seek(0, 2)
            if log.tell() < self._offset:  # a new log (Azurite restarted): start over
                self._offset = 0
                self._pending, self._parsed, self._found = {}, {}, {}
            log.seek(self._offset)
            chunk = log.read()
        complete = chunk.rfind(b"\n") + 1  # Azurite writes asynchronously: leave a partial last line for later
        self._offset += complete
        for line in chunk[:complete].decode(errors="replace").splitlines():
            self._line(line)

    def _line(self, line: str) -> None:
        request_id = line.split(" ", 2)[1] if line.count(" ") >= 2 else ""
        put = _PUT.search(line)
        if put:
            query = dict(p.partition("=")[::2] for p in (put.group("query") or "").split("&") if p)
            self._pending[request_id] = (put.group("queue"), int(query.get("visibilitytimeout", "0")))
            return
        text = _MESSAGE_TEXT.search(line)
        if text and request_id in self._pending:
            name, delay = self._pending.pop(request_id)
            self._parsed[request_id] = PutMessage(name, delay, _decoded(text.group("text")))
            return
        end = _END.search(line)
        if end and request_id in self._parsed:
            message = self._parsed.pop(request_id)
            if end.group("status") == "201":
                self._found.setdefault(message.queue, []).append(message)


def _decoded(raw: str) -> str:
    """The message's text: Base64-decoded UTF-8, as the queue trigger reads it; a message that is not (a test's
    deliberately broken one, on any queue of the shared emulator) is kept as it was sent."""
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return raw
