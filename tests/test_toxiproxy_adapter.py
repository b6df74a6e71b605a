"""The Toxiproxy adapter against the real server of the stack."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chaos.toxiproxy import TOXIC_ATTRIBUTES, Toxic, ToxiproxyError
from facts import topology

pytestmark = pytest.mark.stack


def test_proxies_match_topology(stack: Any) -> None:
    assert stack.toxiproxy.proxy_names() == sorted(p.name for p in topology.PROXIES)


@pytest.mark.parametrize("kind", sorted(TOXIC_ATTRIBUTES))
def test_every_toxic_type_is_accepted_and_removed(stack: Any, kind: str) -> None:
    tp = stack.toxiproxy
    attrs = {a: 1 for a in TOXIC_ATTRIBUTES[kind]}
    name = tp.add_toxic(Toxic("push", kind, attrs, stream="upstream", toxicity=0.5))
    try:
        assert name in tp.toxics("push")
    finally:
        tp.remove_toxic("push", name)
    assert name not in tp.toxics("push")


def test_reset_reenables_and_clears(stack: Any) -> None:
    tp = stack.toxiproxy
    tp.add_toxic(Toxic("notification", "latency", {"latency": 100, "jitter": 10}))
    tp.set_enabled("kafka-produce", False)
    assert not tp.is_enabled("kafka-produce")
    tp.reset()
    assert tp.is_enabled("kafka-produce")
    assert tp.toxics("notification") == []


@pytest.mark.parametrize(
    ("toxic", "message"),
    [
        (Toxic("push", "latencyy"), "unknown toxic type 'latencyy'"),
        (Toxic("push", "latency", {"delay": 5}), "no attribute(s) ['delay']"),
        (Toxic("nope", "latency", {"latency": 5}), "no Toxiproxy proxy named 'nope'"),
    ],
)
def test_bad_toxics_are_named(stack: Any, toxic: Toxic, message: str) -> None:
    with pytest.raises(ToxiproxyError, match=re.escape(message)):
        stack.toxiproxy.add_toxic(toxic)


def test_a_link_acts_on_its_per_broker_siblings(stack: Any) -> None:
    """compose's three-broker profile names proxies `kafka-produce-2`...: one fault cuts them all."""
    import socket

    from toxiproxy.api import APIConsumer

    tp = stack.toxiproxy
    with socket.socket() as s:
        s.bind((topology.HOST, 0))
        free = s.getsockname()[1]
    sibling = "push-2"
    APIConsumer.post("/proxies", json={"name": sibling, "listen": f"{topology.HOST}:{free}",
                                       "upstream": topology.PROXY_PUSH.upstream, "enabled": True})  # fmt: skip
    try:
        tp.set_enabled("push", False)
        assert not tp.is_enabled("push")
        assert {n: p.enabled for n, p in tp._server.proxies().items() if n.startswith("push")} == {
            "push": False,
            sibling: False,
        }
        tp.add_toxic(Toxic("push", "latency", {"latency": 5}, name="group-test"))
        assert "group-test" in tp.toxics(sibling)
        tp.reset()
        assert tp.is_enabled("push") and tp.toxics(sibling) == []
        with pytest.raises(ToxiproxyError, match="no Toxiproxy proxy named 'pus'"):
            tp.set_enabled("pus", False)  # a prefix is not a sibling
    finally:
        APIConsumer.delete(f"/proxies/{sibling}")
        tp.reset()


def test_each_client_calls_its_own_server_whatever_was_made_since() -> None:
    from toxiproxy.api import APIConsumer

    from chaos.toxiproxy import ToxiproxyClient

    native = ToxiproxyClient("127.0.0.1", 8474)
    ToxiproxyClient("toxiproxy", 8474)  # the compose stack's client, made later
    assert native._call("look", lambda: (APIConsumer.host, APIConsumer.port)) == ("127.0.0.1", 8474)
