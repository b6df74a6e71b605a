"""The Kafka cluster id handed to `kafka-storage format` never reads as a command-line option."""

from __future__ import annotations

import base64
import uuid

import pytest

from compose import generate
from facts import topology


def test_an_id_starting_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    dashed = uuid.UUID(bytes=b"\xf8" + b"\x00" * 15)  # base64 of 0xf8... starts with "-"
    plain = uuid.UUID(bytes=b"\x01" * 16)
    assert base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    draws = iter([dashed, plain])
    monkeypatch.setattr(topology.uuid, "uuid4", lambda: next(draws))
    assert topology.kafka_cluster_id() == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")


def test_ids_are_22_url_safe_characters() -> None:
    for _ in range(500):
        cid = topology.kafka_cluster_id()
        assert len(cid) == 22 and not cid.startswith("-")
        assert uuid.UUID(bytes=base64.urlsafe_b64decode(cid + "==")).version == 4


def test_a_seed_fixes_the_id_and_one_starting_with_a_dash_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert topology.kafka_cluster_id(seed="x") == topology.kafka_cluster_id(seed="x") != topology.kafka_cluster_id()
    monkeypatch.setattr(topology.uuid, "uuid5", lambda *_: uuid.UUID(bytes=b"\xf8" + b"\x00" * 15))
    with pytest.raises(ValueError, match="cluster id seeded by 'x' starts with '-'"):
        topology.kafka_cluster_id(seed="x")


def test_the_compose_cluster_id_is_not_an_option() -> None:
    # What docker compose hands `kafka-storage format --cluster-id`: the committed env file's value,
    # the same on every generation (seeded), and never one that reads as an option.
    env = dict(
        line.split("=", 1) for line in (generate.GENERATED / "compose.env").read_text().splitlines() if "=" in line
    )
    cid = env["KAFKA_CLUSTER_ID"]
    assert cid == generate.render_env(generate.env()).split("KAFKA_CLUSTER_ID=", 1)[1].splitlines()[0]
    assert len(cid) == 22 and not cid.startswith("-")
    assert uuid.UUID(bytes=base64.urlsafe_b64decode(cid + "==")).version == 5  # seeded, not drawn
