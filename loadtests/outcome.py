"""What happened to each reaction id the load generator sent: one fixed-size binary record per request.

The ledger joins these records with the push sink's deliveries on `reaction_id`. Only requests that
were actually sent are written; arrivals missed at the in-flight cap never got an id and are
counted in the series and summary instead.

File format (`outcomes-w<worker>.bin`, little-endian, every slot RECORD_SIZE = 72 bytes; times in
Unix nanoseconds of this host's clock):

    slot       36s reaction_id (UTF-8, NUL-padded)  q intended  q started  q ended  I post index
               H status (0: none)  H error ref (0: none)  B outcome (1 ack, 2 failed, 3 unknown)  B kind  2x
    kind 'H'   the first slot: MAGIC in the id field, the worker in the post index field
    kind 'O'   one request (post_id = "post-<post index>")
    kind 'E'   an error text: its ref in the error ref field, its UTF-8 length in the post index
               field, the text itself in the next ceil(length / 72) slots (NUL-padded). Each text is
               defined once, before the first record that refers to it.

A writer appends whole slots only (one `write` per flush), so a reader sees a truncated file only if
the writer died mid-write; any slot that does not parse is an `OutcomeFileError` naming the file and
the record number. `read_outcomes(dir)` yields `OutcomeRecord`s (the fields of the former JSON
lines, which it still reads from `outcomes-w*.jsonl` files of older runs); `read_outcome_ids(dir)`
yields only (reaction_id, outcome) pairs, for the ledger's join of millions of ids.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any


class Outcome(StrEnum):
    ACK = "ack"  # 2xx: the service took responsibility for the reaction
    FAILED = "failed"  # definite failure: an HTTP error status, or the request never left
    UNKNOWN = "unknown"  # no answer (timeout, reset, aborted): it may or may not have been processed


def root_cause(error: BaseException) -> BaseException:
    """geventhttpclient wraps the socket error (`original`, `__cause__`); the root decides the outcome."""
    seen: set[int] = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = getattr(error, "original", None) or error.__cause__
        if not isinstance(inner, BaseException):
            break
        error = inner
    return error


GATEWAY_TIMEOUT = 504


def classify(status: int | None, error: BaseException | None) -> Outcome:
    if status and 200 <= status < 300:
        return Outcome.ACK
    if status == GATEWAY_TIMEOUT:
        # The service gave up waiting, not the work: an async send on the wire or a sync call past
        # its deadline may still be delivered (README: async 503 vs 504).
        return Outcome.UNKNOWN
    if status:
        return Outcome.FAILED
    # A refused connection is certain: no byte reached the server, so nothing can be processed.
    # Anything else without a status (timeout, reset mid-request) may have been processed.
    if error is not None and isinstance(root_cause(error), ConnectionRefusedError):
        return Outcome.FAILED
    return Outcome.UNKNOWN


def describe(error: BaseException | None) -> str | None:
    if error is None:
        return None
    root = root_cause(error)
    text = str(root).strip()
    return f"{type(root).__name__}: {text}" if text else type(root).__name__


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    reaction_id: str
    post_id: str
    worker: int
    intended_unix_nanos: int
    started_unix_nanos: int
    ended_unix_nanos: int
    outcome: Outcome
    status: int | None
    error: str | None

    def to_json(self) -> str:
        row: dict[str, Any] = asdict(self)
        row["outcome"] = str(self.outcome)
        return json.dumps(row, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> OutcomeRecord:
        row = json.loads(line)
        row["outcome"] = Outcome(row["outcome"])
        return cls(**row)

    @property
    def latency_seconds(self) -> float:
        """From the *intended* start, so a late start counts against the system (coordinated omission)."""
        return (self.ended_unix_nanos - self.intended_unix_nanos) / 1e9


class OutcomeFileError(ValueError):
    """An outcomes file that does not parse: names the file and the record (or line)."""


RECORD = struct.Struct("<36sqqqIHHBB2x")
RECORD_SIZE = RECORD.size  # 72
MAX_ID_BYTES = 36
MAGIC = b"sync-async-bench outcomes v1"
KIND_HEADER, KIND_OUTCOME, KIND_ERROR = ord("H"), ord("O"), ord("E")
OUTCOME_CODES: dict[Outcome, int] = {Outcome.ACK: 1, Outcome.FAILED: 2, Outcome.UNKNOWN: 3}
CODE_OUTCOMES: dict[int, Outcome] = {v: k for k, v in OUTCOME_CODES.items()}
POST_PREFIX = "post-"
_CHUNK_SLOTS = 16_384  # slots read at a time (1.1 MiB)


def post_index(post_id: str) -> int:
    if not post_id.startswith(POST_PREFIX) or not post_id[len(POST_PREFIX) :].isdigit():
        raise ValueError(f"post id {post_id!r} is not {POST_PREFIX}<k>")
    return int(post_id[len(POST_PREFIX) :])


def run_here(work: Callable[[], object]) -> object:
    """Where file work runs unless told otherwise: in the caller."""
    return work()


class OutcomeLog:
    """Packs records and appends them to one worker's file on `flush()` (one write per flush).

    The driver's hot path calls `add_packed` with the fields as they are (no record object);
    `add` takes an `OutcomeRecord`.
    """

    def __init__(self, path: Path, worker: int) -> None:
        """`worker`: written in the header (the file's name says it too: outcomes_path)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.worker = worker
        self._file: IO[bytes] | None = path.open("wb")
        self._pending: list[bytes] = [RECORD.pack(MAGIC, 0, 0, 0, worker, 0, 0, 0, KIND_HEADER)]
        self._errors: dict[str, int] = {}
        self._count = 0  # records added
        self.written = 0  # records written

    def error_ref(self, text: str | None) -> int:
        """The ref of an error text, defining it (in the stream, before its first use) when new."""
        if text is None:
            return 0
        ref = self._errors.get(text)
        if ref is None:
            ref = self._errors[text] = len(self._errors) + 1
            data = text.encode()
            if ref > 0xFFFF:  # pathological: 65,535 distinct texts; later ones share the last ref
                ref = self._errors[text] = 0xFFFF
                return ref
            padded = data.ljust(-(-len(data) // RECORD_SIZE) * RECORD_SIZE, b"\0")
            self._pending.append(RECORD.pack(b"", 0, 0, 0, len(data), 0, ref, 0, KIND_ERROR) + padded)
        return ref

    def add_packed(self, record: bytes) -> None:
        """One record already packed with `RECORD.pack(..., KIND_OUTCOME)` (the driver's hot path)."""
        self._pending.append(record)
        self._count += 1

    def add(self, record: OutcomeRecord) -> None:
        rid = record.reaction_id.encode()
        if len(rid) > MAX_ID_BYTES:
            raise ValueError(f"reaction id {record.reaction_id!r} is longer than {MAX_ID_BYTES} bytes")
        self.add_packed(
            RECORD.pack(
                rid,
                record.intended_unix_nanos,
                record.started_unix_nanos,
                record.ended_unix_nanos,
                post_index(record.post_id),
                record.status or 0,
                self.error_ref(record.error),
                OUTCOME_CODES[Outcome(record.outcome)],
                KIND_OUTCOME,
            )
        )

    def flush(self, run: Callable[[Callable[[], object]], object] = run_here) -> int:
        """Write the pending records; `run` does the writing (the driver: in a thread)."""
        if self._file is None or not self._pending:
            return 0
        batch, self._pending = self._pending, []
        data, file = b"".join(batch), self._file
        run(lambda: (file.write(data), file.flush()))
        flushed, self.written = self._count - self.written, self._count
        return flushed

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


# Each worker's files in --outcomes-dir, by these names: its outcome records, its per-second series
# (series.py) and its summary (driver.py, when its schedule ends); the harness reads them by the globs.
OUTCOMES_GLOB = "outcomes-w*.bin"
SERIES_GLOB = "series-w*.jsonl"
SUMMARY_GLOB = "summary-w*.json"
LEGACY_GLOB = "outcomes-w*.jsonl"  # runs written before the binary format


def _worker_file(glob: str, directory: Path, worker: int) -> Path:
    return directory / glob.replace("*", str(worker))


def outcomes_path(directory: Path, worker: int) -> Path:
    return _worker_file(OUTCOMES_GLOB, directory, worker)


def series_path(directory: Path, worker: int) -> Path:
    return _worker_file(SERIES_GLOB, directory, worker)


def summary_path(directory: Path, worker: int) -> Path:
    return _worker_file(SUMMARY_GLOB, directory, worker)


def outcome_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob(OUTCOMES_GLOB), *directory.glob(LEGACY_GLOB)])


def _slots(path: Path) -> Iterator[tuple[int, tuple[Any, ...], dict[int, str], int]]:
    """(record number, unpacked slot, error texts so far, worker) for every 'O' slot of one file."""
    errors: dict[int, str] = {}
    number = 0
    worker = -1
    pending_text = 0  # bytes of an error text still to read
    text_ref = 0
    text = b""
    with path.open("rb") as f:
        while chunk := f.read(RECORD_SIZE * _CHUNK_SLOTS):
            whole = len(chunk) - len(chunk) % RECORD_SIZE
            for slot in RECORD.iter_unpack(memoryview(chunk)[:whole]) if whole else ():
                number += 1
                if pending_text:
                    raw = RECORD.pack(*slot)
                    text += raw[: min(pending_text, RECORD_SIZE)]
                    pending_text -= min(pending_text, RECORD_SIZE)
                    if not pending_text:
                        errors[text_ref] = text.decode(errors="replace")
                    continue
                kind = slot[8]
                if kind == KIND_OUTCOME:
                    if slot[7] not in CODE_OUTCOMES:
                        raise OutcomeFileError(f"{path}: record {number}: outcome code {slot[7]} is not 1, 2 or 3")
                    if slot[6] and slot[6] not in errors:
                        raise OutcomeFileError(f"{path}: record {number}: error ref {slot[6]} was never defined")
                    if worker < 0:
                        raise OutcomeFileError(f"{path}: record {number}: no header before the first record")
                    yield number, slot, errors, worker
                elif kind == KIND_ERROR:
                    pending_text, text_ref, text = slot[4], slot[6], b""
                    if not pending_text:
                        errors[text_ref] = ""
                elif kind == KIND_HEADER and number == 1 and slot[0].rstrip(b"\0") == MAGIC:
                    worker = slot[4]
                else:
                    raise OutcomeFileError(
                        f"{path}: record {number}: not an outcomes record (kind byte {kind}): garbled or another format"
                    )
            if whole != len(chunk):
                if len(chunk) == RECORD_SIZE * _CHUNK_SLOTS:  # cannot happen: chunks are whole slots
                    raise AssertionError("partial slot inside a chunk")
                raise OutcomeFileError(
                    f"{path}: record {number + 1}: truncated ({len(chunk) - whole} of {RECORD_SIZE} bytes); "
                    "the writer stopped mid-record"
                )
    if pending_text:
        raise OutcomeFileError(f"{path}: record {number + 1}: truncated error text ({pending_text} bytes missing)")
    if number == 0:
        raise OutcomeFileError(f"{path}: record 1: empty file (no header)")


def _decode_id(raw: bytes) -> str:
    return (raw if raw[-1] else raw.rstrip(b"\0")).decode()


def _read_binary(path: Path) -> Iterator[OutcomeRecord]:
    for _, (rid, intended, started, ended, post, status, ref, code, _k), errors, worker in _slots(path):
        yield OutcomeRecord(
            reaction_id=_decode_id(rid),
            post_id=f"{POST_PREFIX}{post}",
            worker=worker,
            intended_unix_nanos=intended,
            started_unix_nanos=started,
            ended_unix_nanos=ended,
            outcome=CODE_OUTCOMES[code],
            status=status or None,
            error=errors[ref] if ref else None,
        )


def _read_jsonl(path: Path) -> Iterator[OutcomeRecord]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield OutcomeRecord.from_json(line)
            except (ValueError, TypeError, KeyError) as e:
                raise OutcomeFileError(f"{path}: line {number}: {type(e).__name__}: {e}") from None


def read_outcomes(directory: Path) -> Iterator[OutcomeRecord]:
    """Every record of every worker in `directory`."""
    for path in outcome_files(directory):
        yield from (_read_jsonl(path) if path.suffix == ".jsonl" else _read_binary(path))


_OUTCOME_TEXT = {code: str(o) for code, o in CODE_OUTCOMES.items()}


def read_outcome_ids(directory: Path) -> Iterator[tuple[str, str]]:
    """(reaction_id, "ack"|"failed"|"unknown") of every record: the ledger's join, lean (no record objects)."""
    text = _OUTCOME_TEXT
    for path in outcome_files(directory):
        if path.suffix == ".jsonl":
            yield from ((r.reaction_id, str(r.outcome)) for r in _read_jsonl(path))
            continue
        for _, slot, _, _ in _slots(path):
            rid = slot[0]
            yield (rid if rid[-1] else rid.rstrip(b"\0")).decode(), text[slot[7]]
