"""The ledger's join at scale: synthesize N reaction ids, classify them, print time and peak memory.

    .venv/bin/python -m harness.ledger_benchmark --ids 10000000

Writes, streaming (never the whole set in memory), the files a cell reads: the load generator's
outcome files (loadtests/outcome.py's binary records, two workers) and a push sink dump
(targets/pushsink/deliveries.py's format, what GET /dump streams), in a temporary folder. Then
classifies them with the readers and the join the harness uses (`read_outcome_ids`, `parse_dump`,
`ledger.classify_stream`) and checks the result against the ledger the synthesis implies.

Every id follows a pattern by its index (i % 20): 14 in 20 acknowledged and delivered once, one
acknowledged and delivered three times, one acknowledged and never delivered (lost), failed
undelivered, failed delivered (recovered), unknown delivered (recovered), unknown undelivered;
one id in 500 is sent twice (a second, less or more hopeful answer later in the files), one in
1,000 extra deliveries were never sent (unexpected), and a few ids are dead-lettered.
"""

from __future__ import annotations

import argparse
import resource
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness import ledger
from loadtests.outcome import KIND_OUTCOME, OUTCOME_CODES, RECORD, Outcome, OutcomeLog, outcomes_path, read_outcome_ids
from targets.pushsink.deliveries import DUMP_HEADER, dump_line, dump_trailer, parse_dump

DUMP_FILE = "deliveries.tsv"
_BATCH = 65_536
ACKED_DELIVERED = range(14)  # patterns (i % 20)
ACK_REDELIVERED, ACK_LOST, FAILED_LOST, FAILED_DELIVERED, UNKNOWN_DELIVERED, UNKNOWN_LOST = 14, 15, 16, 17, 18, 19
DUP_ACK, DUP_FAILED = 7, 16  # i % 1000: sent again later as failed (stays ack) / as unknown (becomes unknown)
UNEXPECTED_EVERY = 1000
DEAD_EVERY = 100_000  # i % DEAD_EVERY == ACK_LOST (undelivered) or FAILED_DELIVERED (delivered): dead-lettered


@dataclass
class Synthesized:
    folder: Path
    expected: ledger.Ledger
    dead: list[str]
    bytes_written: int


def _rid(prefix: str, i: int) -> str:
    return f"{prefix}-0000-4000-8000-{i:012x}"


def synthesize(folder: Path, ids: int, workers: int = 2) -> Synthesized:
    """Write outcomes and a sink dump for `ids` ids into `folder`; the ledger they must give."""
    sent, extra = secrets.token_hex(4), secrets.token_hex(4)
    while extra == sent:
        extra = secrets.token_hex(4)
    logs = [OutcomeLog(outcomes_path(folder, w), w) for w in range(workers)]
    refs = [{o: log.error_ref(t) for o, t in _ERRORS.items()} for log in logs]
    codes = {o: OUTCOME_CODES[o] for o in Outcome}
    e = ledger.Ledger(attempted=ids)
    lost: list[str] = []
    recovered: list[str] = []
    unexpected: list[str] = []
    dead: list[str] = []
    dead_undelivered: list[str] = []
    base = time.time_ns()
    dump = (folder / DUMP_FILE).open("w", encoding="utf-8")
    dump.write(DUMP_HEADER)
    rows = 0
    lines: list[str] = []

    def record(w: int, rid: str, i: int, outcome: Outcome) -> None:
        t = base + i * 1000
        logs[w].add_packed(
            RECORD.pack(
                rid.encode(), t, t + 100_000, t + 2_000_000, i % 1000, 202 if outcome is Outcome.ACK else 0,
                refs[w][outcome], codes[outcome], KIND_OUTCOME,
            )
        )  # fmt: skip

    for i in range(ids):
        rid = _rid(sent, i)
        k = i % 20
        outcome, count = _PATTERNS[k]
        record(i % workers, rid, i, outcome)
        if outcome is Outcome.ACK:
            e.acknowledged += 1
        elif outcome is Outcome.FAILED and not (k == FAILED_LOST and i % 1000 == DUP_FAILED):
            e.failed += 1
        else:
            e.unknown += 1
        if count:
            e.delivered += 1
            e.redeliveries += count - 1
            lines.append(dump_line(rid, count, base + i * 1000, base + i * 1000 + 5_000_000))
            if outcome is not Outcome.ACK:
                e.recovered += 1
                if len(recovered) < ledger.SAMPLE:
                    recovered.append(rid)
        elif outcome is Outcome.ACK:
            e.lost += 1
            if len(lost) < ledger.SAMPLE:
                lost.append(rid)
        if i % DEAD_EVERY in (ACK_LOST, FAILED_DELIVERED):
            dead += [rid, rid]  # written twice to the dead-letter topic: counted once
            if not count:
                dead_undelivered.append(rid)
        if i % UNEXPECTED_EVERY == UNEXPECTED_EVERY - 1:
            ghost = _rid(extra, i)
            lines.append(dump_line(ghost, 1, base, base + 1))
            e.unexpected += 1
            if len(unexpected) < ledger.SAMPLE:
                unexpected.append(ghost)
        if len(lines) >= _BATCH:
            rows += len(lines)
            dump.write("".join(lines))
            lines.clear()
        if not i % _BATCH:
            for log in logs:
                log.flush()
    # Sent again, later in the files: an ack stays an ack; a failure answered "unknown" the second time is unknown.
    for i in range(DUP_ACK, ids, 1000):
        record(0, _rid(sent, i), i, Outcome.FAILED)
    for i in range(DUP_FAILED, ids, 1000):
        record(0, _rid(sent, i), i, Outcome.UNKNOWN)
    rows += len(lines)
    dump.write("".join(lines))
    dump.write(dump_trailer(rows))
    dump.close()
    for log in logs:
        log.close()
    e.dead_lettered = len(set(dead))
    e.samples = {
        k: v
        for k, v in (("lost", lost), ("unexpected", unexpected), ("recovered", recovered),
                     ("dead_lettered_undelivered", sorted(dead_undelivered)[: ledger.SAMPLE]))
        if v
    }  # fmt: skip
    size = sum(p.stat().st_size for p in folder.iterdir())
    return Synthesized(folder, e, dead, size)


_ERRORS = {Outcome.ACK: None, Outcome.FAILED: "HTTP 503", Outcome.UNKNOWN: "Timeout: 10 seconds"}
_PATTERNS: dict[int, tuple[Outcome, int]] = {
    **{k: (Outcome.ACK, 1) for k in ACKED_DELIVERED},
    ACK_REDELIVERED: (Outcome.ACK, 3),
    ACK_LOST: (Outcome.ACK, 0),
    FAILED_LOST: (Outcome.FAILED, 0),
    FAILED_DELIVERED: (Outcome.FAILED, 1),
    UNKNOWN_DELIVERED: (Outcome.UNKNOWN, 1),
    UNKNOWN_LOST: (Outcome.UNKNOWN, 0),
}


def classify(folder: Path, dead: list[str], max_in_memory: int = ledger.MAX_IN_MEMORY) -> ledger.Ledger:
    """The harness' readers and join on the synthesized files."""
    path = folder / DUMP_FILE
    with path.open("rb") as dump:
        got = ((row.reaction_id, row.raw_count) for row in parse_dump(dump, str(path)))
        return ledger.classify_stream(read_outcome_ids(folder), got, dead, max_in_memory=max_in_memory)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.ledger_benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--ids", type=int, default=10_000_000, help="reaction ids to synthesize and classify")
    p.add_argument("--workers", type=int, default=2, help="outcome files (one per load generator worker)")
    p.add_argument("--max-in-memory", type=int, default=ledger.MAX_IN_MEMORY, help="ids joined in memory")
    p.add_argument("--dir", type=Path, help="write the files here and keep them (default: a temporary folder)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        synth = synthesize(folder, args.ids, args.workers)
        t1 = time.perf_counter()
        rss_synth = peak_rss_mib()
        print(
            f"synthesized {args.ids:,} ids ({synth.bytes_written / 2**20:,.0f} MiB of outcomes and dump) "
            f"in {t1 - t0:.1f} s, peak RSS so far {rss_synth:,.0f} MiB",
            flush=True,
        )
        got = classify(folder, synth.dead, args.max_in_memory)
        t2 = time.perf_counter()
    rss = peak_rss_mib()
    ok = got == synth.expected
    print(f"classified {got.attempted:,} ids in {t2 - t1:.1f} s; peak RSS {rss:,.0f} MiB; matches: {ok}")
    print(f"  {got.model_dump(exclude={'samples'})}")
    if not ok:
        print(f"  expected {synth.expected.model_dump(exclude={'samples'})}")
        print(f"  samples got {got.samples}\n  expected {synth.expected.samples}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
