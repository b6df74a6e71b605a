"""What happened to each reaction id the load generator sent, one JSON line per request.

The ledger joins these lines with the push sink's deliveries on `reaction_id`. Only requests that
were actually sent are written; arrivals missed at the in-flight cap never got an id and are
counted in the series and summary instead.

Line format (`outcomes-w<worker>.jsonl`, times in Unix nanoseconds of this host's clock):
    {"reaction_id": "...", "post_id": "...", "worker": 0, "intended_unix_nanos": ...,
     "started_unix_nanos": ..., "ended_unix_nanos": ..., "outcome": "ack|failed|unknown",
     "status": 202 | null, "error": "..." | null}
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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


class OutcomeLog:
    """Buffers records and appends them to one worker's JSONL file on `flush()`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] | None = path.open("w", encoding="utf-8")
        self._pending: list[OutcomeRecord] = []
        self.written = 0

    def add(self, record: OutcomeRecord) -> None:
        self._pending.append(record)

    def flush(self) -> int:
        if self._file is None or not self._pending:
            return 0
        batch, self._pending = self._pending, []
        self._file.write("".join(r.to_json() + "\n" for r in batch))
        self._file.flush()
        self.written += len(batch)
        return len(batch)

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


OUTCOMES_GLOB = "outcomes-w*.jsonl"


def outcomes_path(directory: Path, worker: int) -> Path:
    return directory / f"outcomes-w{worker}.jsonl"


def read_outcomes(directory: Path) -> Iterator[OutcomeRecord]:
    """Every record of every worker in `directory` (the ledger's entry point)."""
    for path in sorted(directory.glob(OUTCOMES_GLOB)):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield OutcomeRecord.from_json(line)
