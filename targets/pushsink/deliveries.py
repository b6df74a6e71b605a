"""Who got notified, how many times, and when first: the delivery log the harness classifies against.

The whole log leaves the sink as a stream (GET /dump), never as one JSON body: tab-separated lines,
written and read here (`dump_chunks`, `parse_dump`) so the format lives in one place:

    #pushsink-dump v1<TAB>reaction_id<TAB>count<TAB>created_unix_nanos<TAB>first_delivery_unix_nanos
    <reaction_id><TAB><count><TAB><created_unix_nanos><TAB><first_delivery_unix_nanos>
    ...
    #end<TAB>rows=<n>

A reaction id holding a tab, a line break, a backslash or a double quote, or starting with '#', is
written as a JSON string (it then starts with '"'). The trailer says how many rows came: a stream
cut short (a sink that died, a dropped connection) has none or another count, and `parse_dump`
refuses it, as it refuses a line that does not parse, naming the line.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

DUMP_HEADER = "#pushsink-dump v1\treaction_id\tcount\tcreated_unix_nanos\tfirst_delivery_unix_nanos\n"
DUMP_TRAILER = "#end\trows="
DUMP_CONTENT_TYPE = "text/tab-separated-values"
DUMP_CHUNK_ROWS = 5_000  # rows per chunk written (the event loop serves pushes between chunks)
_QUOTE = str.maketrans("", "", '\t\n\r\\"')


class DumpError(ValueError):
    """A delivery dump that does not parse or was cut short; names the source and the line."""


class DeliveryRow(NamedTuple):
    reaction_id: str
    raw_count: int  # deliveries of this id, first included
    created_unix_nanos: int
    first_delivery_unix_nanos: int


def dump_key(key: str) -> str:
    """The id as written in a dump line: itself, or a JSON string when it holds a separator."""
    if key.translate(_QUOTE) != key or key.startswith("#") or not key:
        return json.dumps(key)
    return key


def dump_line(key: str, count: int, created_unix_nanos: int, first_delivery_unix_nanos: int) -> str:
    return f"{dump_key(key)}\t{count}\t{created_unix_nanos}\t{first_delivery_unix_nanos}\n"


def dump_trailer(rows: int) -> str:
    return f"{DUMP_TRAILER}{rows}\n"


def parse_dump(lines: Iterable[bytes], source: str = "dump") -> Iterator[DeliveryRow]:
    """Every row of a dump (lines as bytes, e.g. a binary file or an HTTP response), checked whole."""
    it = iter(lines)
    first = next(it, b"")
    if first.decode(errors="replace") != DUMP_HEADER:
        raise DumpError(f"{source}: line 1: not a push sink dump (header {first[:60]!r})")
    rows = 0
    number = 1
    trailer = DUMP_TRAILER.encode()
    for number, line in enumerate(it, 2):
        if line[-1:] != b"\n":
            raise DumpError(f"{source}: line {number}: cut short mid-line ({line[:60]!r})")
        if line[:1] == b"#":
            if not line.startswith(trailer):
                raise DumpError(f"{source}: line {number}: unexpected {line[:60]!r}")
            try:
                declared = int(line[len(trailer) :])
            except ValueError:
                raise DumpError(f"{source}: line {number}: bad trailer {line[:60]!r}") from None
            if declared != rows:
                raise DumpError(f"{source}: line {number}: trailer says {declared} rows, {rows} came")
            if next(it, None) is not None:
                raise DumpError(f"{source}: line {number + 1}: data after the trailer")
            return
        try:
            key, count, created, first_delivery = line[:-1].split(b"\t")
            rid = json.loads(key) if key[:1] == b'"' else key.decode()
            yield DeliveryRow(rid, int(count), int(created), int(first_delivery))
        except ValueError as e:
            raise DumpError(f"{source}: line {number}: {e}: {line[:80]!r}") from None
        rows += 1
    raise DumpError(f"{source}: line {number + 1}: the dump ends without its trailer after {rows} rows (cut short)")


@dataclass(slots=True)
class Delivery:
    count: int
    created_unix_nanos: int
    first_delivery_unix_nanos: int


class DeliveryLog:
    """reaction id -> its first delivery and how many came; the sink's whole state."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._deliveries: dict[str, Delivery] = {}
        self._raw = 0
        self._clock = clock
        self._changed = clock()  # when the last delivery (or reset) came: what a drain waits on

    @property
    def raw(self) -> int:
        return self._raw

    @property
    def unique(self) -> int:
        return len(self._deliveries)

    def record(self, key: str, created_unix_nanos: int, now_unix_nanos: int) -> bool:
        """Count one delivery of `key`; True when it is the first one."""
        self._raw += 1
        self._changed = self._clock()
        entry = self._deliveries.get(key)
        if entry is not None:
            entry.count += 1
            return False
        self._deliveries[key] = Delivery(1, created_unix_nanos, now_unix_nanos)
        return True

    def get(self, key: str) -> Delivery | None:
        return self._deliveries.get(key)

    def reset(self) -> None:
        self._deliveries.clear()
        self._raw = 0
        self._changed = self._clock()

    def idle_seconds(self) -> float:
        """Seconds since the last delivery or reset (or the sink's start): the sink's own clock, so a
        quiet spell that began before someone started watching counts whole."""
        return self._clock() - self._changed

    def stats(self) -> dict[str, int]:
        return {"raw": self._raw, "unique": self.unique}

    def dump_chunks(self, rows_per_chunk: int = DUMP_CHUNK_ROWS) -> Iterator[str]:
        """The dump (module docstring) in chunks of text. The ids are the ones present when it started;
        each row has its count as of when its chunk is written. Ids reset meanwhile are left out."""
        keys = list(self._deliveries)
        yield DUMP_HEADER
        rows = 0
        get = self._deliveries.get
        for start in range(0, len(keys), rows_per_chunk):
            lines = []
            for key in keys[start : start + rows_per_chunk]:
                d = get(key)
                if d is not None:
                    lines.append(dump_line(key, d.count, d.created_unix_nanos, d.first_delivery_unix_nanos))
            rows += len(lines)
            yield "".join(lines)
        yield dump_trailer(rows)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy, safe to serialise in another thread while deliveries go on."""
        return {
            **self.stats(),
            "deliveries": {
                key: {
                    "count": d.count,
                    "created_unix_nanos": d.created_unix_nanos,
                    "first_delivery_unix_nanos": d.first_delivery_unix_nanos,
                }
                for key, d in self._deliveries.items()
            },
        }


def write_snapshot(snapshot: dict[str, Any], path: str | Path) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a ledger."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(snapshot, out, separators=(",", ":"))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
