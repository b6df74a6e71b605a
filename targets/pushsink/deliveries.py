"""Who got notified, how many times, and when first: the delivery log the harness classifies against."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class Delivery:
    count: int
    created_unix_nanos: int
    first_delivery_unix_nanos: int


class DeliveryLog:
    """reaction id -> its first delivery and how many came; the sink's whole state."""

    def __init__(self) -> None:
        self._deliveries: dict[str, Delivery] = {}
        self._raw = 0

    @property
    def raw(self) -> int:
        return self._raw

    @property
    def unique(self) -> int:
        return len(self._deliveries)

    def record(self, key: str, created_unix_nanos: int, now_unix_nanos: int) -> bool:
        """Count one delivery of `key`; True when it is the first one."""
        self._raw += 1
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

    def stats(self) -> dict[str, int]:
        return {"raw": self._raw, "unique": self.unique}

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
