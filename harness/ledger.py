"""Jepsen-style classification of every reaction id: what the client was told vs what the phone got.

attempted     every id the load generator sent
acknowledged  the client got a 2xx
failed        a definite answer that it was not taken: a 4xx/5xx other than 504, or a refused connection
unknown       maybe taken: a 504 (the service gave up waiting, not the work), a timeout or a reset
delivered     attempted ids that reached the push sink (unique)
redeliveries  raw deliveries minus unique ones (at-least-once at work)
lost          acknowledged but never delivered: the one thing a pipeline must never do
unexpected    delivered but never attempted
recovered     failed or unknown, yet delivered
dead_lettered ids the consumer wrote to the dead-letter topic (unique; the raw writes are counted
              apart): given up on, but accounted for. One never delivered is also lost.

The join streams: outcomes and deliveries are iterables read once. Each id sent costs one small
dict entry (id -> a small int: its most hopeful answer, and whether it was delivered) while at
most `max_in_memory` ids are held; past that, the ids are hash-partitioned into spool files in a
temporary folder and joined one partition at a time, so memory stays bounded whatever the run's
size (python -m harness.ledger_benchmark --ids 10000000 measures it).
"""

from __future__ import annotations

import bisect
import heapq
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field

ACK, FAILED, UNKNOWN = "ack", "failed", "unknown"
SAMPLE = 20  # ids listed per category in the result, enough to go and look

# An id's answer as a rank (higher is more hopeful: one 2xx is a promise the pipeline must keep),
# plus DELIVERED once the sink has it.
_RANK = {FAILED: 1, UNKNOWN: 2, ACK: 3}
DELIVERED = 4
MAX_IN_MEMORY = 2_000_000  # ids joined in memory; more are partitioned on disk
PARTITIONS = 32  # a power of two
_SPOOL_BATCH = 4096  # lines buffered per partition before a write


class Ledger(BaseModel):
    """The counts of facts/measures.LEDGER_COUNTS, and a few ids of each worrying kind to go and look at."""

    model_config = ConfigDict(extra="forbid")

    attempted: int = 0
    acknowledged: int = 0
    failed: int = 0
    unknown: int = 0
    delivered: int = 0
    redeliveries: int = 0
    lost: int = 0
    unexpected: int = 0
    recovered: int = 0
    dead_lettered: int = 0
    samples: dict[str, list[str]] = Field(default_factory=dict)

    @property
    def no_loss(self) -> bool:
        return self.lost == 0 and self.unexpected == 0


def classify(
    outcomes: Iterable[Mapping[str, Any]],
    deliveries: Mapping[str, Mapping[str, Any]] | Iterable[tuple[Any, ...]],
    dead_lettered: Iterable[str] = (),
    max_in_memory: int = MAX_IN_MEMORY,
) -> Ledger:
    """`outcomes`: one record per id sent ({"reaction_id", "outcome": ack|failed|unknown}).
    `deliveries`: the push sink's ledger, id -> {"count", ...}, or its rows streamed
    ((reaction_id, count, ...) tuples, e.g. harness.sink.iter_deliveries()). `dead_lettered`: the
    reaction id of every dead-letter record written during the run (repeats allowed)."""
    told = ((str(rec["reaction_id"]), str(rec["outcome"])) for rec in outcomes)
    if isinstance(deliveries, Mapping):
        got: Iterable[tuple[str, int]] = ((rid, int(d.get("count", 1))) for rid, d in deliveries.items())
    else:
        got = ((row[0], row[1]) for row in deliveries)
    return classify_stream(told, got, dead_lettered, max_in_memory=max_in_memory)


class _Smallest:
    """The `SAMPLE` smallest ids offered, in order (bounded, whatever the number offered)."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def offer(self, rid: str) -> None:
        ids = self.ids
        if len(ids) < SAMPLE:
            bisect.insort(ids, rid)
        elif rid < ids[-1]:
            bisect.insort(ids, rid)
            ids.pop()


class _Tally:
    def __init__(self, dead: set[str]) -> None:
        self.codes: Counter[int] = Counter()
        self.redeliveries = 0
        self.unexpected = 0
        self.unexpected_ids = _Smallest()
        self.lost_ids = _Smallest()
        self.recovered_ids = _Smallest()
        self.dead = dead
        self.dead_delivered: set[str] = set()

    def join(self, told: dict[str, int], deliveries: Iterable[tuple[str, int]]) -> None:
        """Mark the delivered ids of `told` and count what the sink got; then tally `told`."""
        get = told.get
        dead = self.dead
        for rid, count in deliveries:
            if count > 1:
                self.redeliveries += count - 1
            code = get(rid)
            if code is None:
                self.unexpected += 1
                self.unexpected_ids.offer(rid)
            elif code < DELIVERED:
                told[rid] = code + DELIVERED
            if dead and rid in dead:
                self.dead_delivered.add(rid)
        codes = Counter(told.values())
        self.codes.update(codes)
        if codes[_RANK[ACK]]:
            for rid in heapq.nsmallest(SAMPLE, (r for r, c in told.items() if c == _RANK[ACK])):
                self.lost_ids.offer(rid)
        if codes[_RANK[FAILED] + DELIVERED] or codes[_RANK[UNKNOWN] + DELIVERED]:
            recovered = (_RANK[FAILED] + DELIVERED, _RANK[UNKNOWN] + DELIVERED)
            for rid in heapq.nsmallest(SAMPLE, (r for r, c in told.items() if c in recovered)):
                self.recovered_ids.offer(rid)

    def ledger(self) -> Ledger:
        c = self.codes
        f, u, a = _RANK[FAILED], _RANK[UNKNOWN], _RANK[ACK]
        d = DELIVERED
        led = Ledger(
            attempted=sum(c.values()),
            acknowledged=c[a] + c[a + d],
            failed=c[f] + c[f + d],
            unknown=c[u] + c[u + d],
            delivered=c[f + d] + c[u + d] + c[a + d],
            redeliveries=self.redeliveries,
            lost=c[a],
            unexpected=self.unexpected,
            recovered=c[f + d] + c[u + d],
            dead_lettered=len(self.dead),
        )
        undelivered_dead = sorted(self.dead - self.dead_delivered)[:SAMPLE]  # the ones someone has to replay
        led.samples = {
            k: v
            for k, v in (("lost", self.lost_ids.ids), ("unexpected", self.unexpected_ids.ids),
                         ("recovered", self.recovered_ids.ids), ("dead_lettered_undelivered", undelivered_dead))
            if v
        }  # fmt: skip
        return led


def _rank(rid: str, outcome: str) -> int:
    rank = _RANK.get(outcome)
    if rank is None:
        raise ValueError(f"reaction {rid}: unknown outcome {outcome!r}")
    return rank


def classify_stream(
    outcomes: Iterable[tuple[str, str]],
    deliveries: Iterable[tuple[str, int]],
    dead_lettered: Iterable[str] = (),
    max_in_memory: int = MAX_IN_MEMORY,
) -> Ledger:
    """The ledger from (reaction_id, outcome) pairs and (reaction_id, raw delivery count) pairs, each
    read once. An id sent twice keeps its most hopeful answer."""
    tally = _Tally(set(dead_lettered))
    told: dict[str, int] = {}
    get = told.get
    rank = _RANK
    pairs = iter(outcomes)
    every = max(1, min(0x10000, max_in_memory))  # how often the size is checked
    for n, (rid, outcome) in enumerate(pairs, 1):
        code = rank.get(outcome) or _rank(rid, outcome)
        prev = get(rid)
        if prev is None or code > prev:
            told[rid] = code
        if not n % every and len(told) > max_in_memory:
            break
    else:
        tally.join(told, deliveries)
        return tally.ledger()
    with tempfile.TemporaryDirectory(prefix="ledger-") as tmp:
        spool = _Spool(Path(tmp))
        spool.add_outcomes(((rid, str(code)) for rid, code in told.items()))
        told.clear()
        spool.add_outcomes(((rid, str(rank.get(o) or _rank(rid, o))) for rid, o in pairs))
        spool.add_deliveries(deliveries)
        for part in range(PARTITIONS):
            told = spool.told(part)
            tally.join(told, spool.deliveries(part))
            told.clear()
    return tally.ledger()


class _Spool:
    """Ids hash-partitioned into text files: `<id>\t<rank>` for outcomes, `<id>\t<count>` for deliveries."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, kind: str, part: int) -> Path:
        return self.folder / f"{kind}-{part:02d}.txt"

    def _write(self, kind: str, pairs: Iterable[tuple[str, str]]) -> None:
        files: list[IO[str]] = [
            self._path(kind, p).open("a", encoding="utf-8", newline="\n") for p in range(PARTITIONS)
        ]
        buffers: list[list[str]] = [[] for _ in range(PARTITIONS)]
        mask = PARTITIONS - 1
        try:
            for rid, value in pairs:
                if "\n" in rid:
                    raise ValueError(f"reaction id {rid!r} holds a line break")
                part = hash(rid) & mask
                buf = buffers[part]
                buf.append(f"{rid}\t{value}\n")
                if len(buf) >= _SPOOL_BATCH:
                    files[part].write("".join(buf))
                    buf.clear()
            for f, buf in zip(files, buffers, strict=True):
                f.write("".join(buf))
        finally:
            for f in files:
                f.close()

    def add_outcomes(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._write("told", pairs)

    def add_deliveries(self, deliveries: Iterable[tuple[str, int]]) -> None:
        self._write("got", ((rid, str(count)) for rid, count in deliveries))

    def told(self, part: int) -> dict[str, int]:
        told: dict[str, int] = {}
        get = told.get
        path = self._path("told", part)
        if path.exists():
            with path.open(encoding="utf-8", newline="\n") as lines:
                for line in lines:
                    rid, code = line[:-3], ord(line[-2]) - 48
                    prev = get(rid)
                    if prev is None or code > prev:
                        told[rid] = code
        return told

    def deliveries(self, part: int) -> Iterator[tuple[str, int]]:
        path = self._path("got", part)
        if not path.exists():
            return
        with path.open(encoding="utf-8", newline="\n") as lines:
            for line in lines:
                rid, _, count = line.rpartition("\t")
                yield rid, int(count)
