"""Provisioning keeps the stack's fixed ports out of the kernel's ephemeral range."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facts import topology
from harness.provision import _parse_ports, reserve_ports


def test_the_fixed_ports_in_the_ephemeral_range_are_reserved_once(tmp_path: Path) -> None:
    reserved, port_range = tmp_path / "reserved", tmp_path / "range"
    port_range.write_text("32768\t60999\n")
    reserved.write_text("40000-40002\n")
    wanted = reserve_ports(reserved, port_range)
    assert topology.HAPROXY_PORT in wanted and topology.NOTIFICATION_GRPC_PORT in wanted
    assert all(32768 <= p <= 60999 for p in wanted) and topology.REACTION_HTTP_PORT not in wanted
    assert _parse_ports(reserved.read_text()) == {40000, 40001, 40002, *wanted}  # kept what was there
    assert reserve_ports(reserved, port_range) == []  # nothing left to do


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can reserve ports; `make setup` says so")
def test_the_machine_s_ephemeral_range_spares_the_stack_s_ports() -> None:
    """What `make setup` did here (it runs as root in CI): no fixed port can be a client's local port."""
    low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    reserved = _parse_ports(Path("/proc/sys/net/ipv4/ip_local_reserved_ports").read_text())
    exposed = {p for p in topology.fixed_ports() if low <= p <= high} - reserved
    assert not exposed, f"run `make setup` (as root) to reserve {sorted(exposed)}"
