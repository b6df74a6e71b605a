"""Where the services' CPU goes (harness/capacity/service_profile.py): py-spy's stacks folded by layer."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facts import topology
from harness.capacity import service_profile as sp

SITE = "/venv/lib/python3.11/site-packages"
OURS = str(sp.ROOT / "targets/notification/delivery.py")
MAIN = str(sp.ROOT / "targets/notification/__main__.py")  # under every sample of the main thread
RAW = "\n".join([
    f"main (<frozen runpy>:1);main ({MAIN}:1);Runner.run (/py/lib/python3.11/asyncio/runners.py:118) 40",  # in C
    f"Runner.run (/py/lib/python3.11/asyncio/runners.py:118);deliver ({OURS}:9);post ({SITE}/aiohttp/client.py:3) 25",
    f"Runner.run (/py/lib/python3.11/asyncio/runners.py:118);deliver ({OURS}:9) 5",
    f"_intercept ({SITE}/opentelemetry/instrumentation/grpc/_aio_server.py:1);Notify ({OURS}:4);"
    f"observe ({SITE}/prometheus_client/metrics.py:683) 10",
    "Thread.run (/py/lib/python3.11/threading.py:982);"
    f"worker ({SITE}/opentelemetry/sdk/_shared_internal/__init__.py:2);dumps (/py/lib/python3.11/json/encoder.py:9) 12",
    "Thread._bootstrap (/py/lib/python3.11/threading.py:1002);Thread.run (/py/lib/python3.11/threading.py:982) 3",
    " 5",  # a thread without a Python frame
    f"Runner.run (/py/lib/python3.11/asyncio/runners.py:118);deliver ({OURS}:9);"
    f"on_end ({SITE}/opentelemetry/sdk/trace/__init__.py:1);Event.set (/py/lib/python3.11/threading.py:590) 4",
    f"Runner.run (/py/lib/python3.11/asyncio/runners.py:118);deliver ({OURS}:9);"
    f"on_request_start ({SITE}/opentelemetry/instrumentation/aiohttp_client/__init__.py:1) 7",
])  # fmt: skip


def test_a_frame_is_in_the_layer_of_its_file() -> None:
    assert sp.layer(OURS) == "ours"
    assert sp.layer(f"{SITE}/opentelemetry/instrumentation/grpc/_aio_server.py") == "OpenTelemetry"  # not gRPC
    assert sp.layer(f"{SITE}/grpc/aio/_call.py") == "gRPC"
    assert sp.layer(f"{SITE}/yarl/_url.py") == "aiohttp"
    assert sp.layer("/py/lib/python3.11/asyncio/runners.py", "Runner.run") == "native"  # the C it called: uvloop
    assert sp.layer("/py/lib/python3.11/threading.py", "Thread.run") == "native"
    assert sp.layer("/py/lib/python3.11/threading.py", "Event.set") == "standard library"  # not a thread's run
    assert sp.layer("/py/lib/python3.11/json/encoder.py") == "standard library"
    assert sp.layer("<frozen runpy>") == "standard library"
    assert sp.layer(f"{SITE}/psutil/__init__.py") == "other"
    assert sp.frame_parts(f"Deliverer.deliver ({OURS}:9)") == (OURS, "Deliverer.deliver")
    assert sp.frame_parts("<lambda> (a (b).py:3)") == ("a (b).py", "<lambda>")


def test_samples_are_shared_by_the_innermost_frame_and_inclusively(tmp_path: Path) -> None:
    raw = tmp_path / "notification.txt"
    raw.write_text(RAW + "\n")
    p = sp.read_raw("notification", raw, "0.1")
    assert p.samples == 111 and sum(p.by_layer.values()) == 111
    assert p.by_layer == {"ours": 5, "OpenTelemetry": 7, "gRPC": 0, "aiohttp": 25, "aiokafka": 0,
                          "prometheus_client": 10, "native": 48, "standard library": 16, "other": 0}  # fmt: skip
    # not the 40 where only __main__ was, below the loop; nor the 10 where the interceptor was, below Notify;
    # and the 4 under an Event.set (threading.py, but no thread's run) counted in both
    assert p.inclusive == {"ours": 51, "OpenTelemetry": 23}
    head, row = (line.split("  ") for line in sp.table([p]).splitlines())
    cells = dict(zip([h.strip() for h in head if h], [c.strip() for c in row if c], strict=True))
    assert cells["service"] == "notification" and cells["tracing"] == "10% of reactions"
    assert cells["native"] == "43%" and cells["ours inclusive"] == "46%"  # 48 and 51 of 111


def test_a_line_that_is_not_a_stack_names_the_file_and_line(tmp_path: Path) -> None:
    raw = tmp_path / "reaction.txt"
    raw.write_text(RAW + "\nrun (x.py:1);half a line\n")
    with pytest.raises(ValueError, match=re.escape(f"{raw}:10: not a py-spy raw stack line")):
        sp.read_raw("reaction", raw, "1")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--trace-sample-ratio", "0.25"])
    yield proc
    proc.kill()
    proc.wait()


def test_the_tracing_a_service_runs_with_is_read_from_its_command_line(sleeper: subprocess.Popen[bytes]) -> None:
    assert sp.tracing_setting(sleeper.pid) == "0.25"


def test_without_a_stack_it_says_what_to_start_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sp.supervisor, "listener_pid", lambda port: None)  # nothing listens, stack up or not
    assert sp.main(["--seconds", "1"]) == 1
    where = topology.addr(topology.REACTION_HTTP_PORT)
    assert f"no process listens on {where} (reaction), or not one of this user's" in capsys.readouterr().err


@pytest.mark.stack
def test_every_service_is_sampled_under_wrk_on_the_real_stack(stack: Any, tmp_path: Path) -> None:
    profiles, wrk = sp.profile(2, 100, 8, tmp_path)
    assert wrk.per_second is not None and wrk.per_second > 0
    assert [p.service for p in profiles] == list(topology.SERVICES)
    for p in profiles:
        assert p.samples > 0 and sum(p.by_layer.values()) == p.samples, p
        assert p.inclusive["ours"] > 0, p  # every service ran our handlers under the load
        assert p.tracing == "1"  # the session's stack traces every reaction (the services' default)
        assert (tmp_path / f"{p.service}.txt").exists()
    reaction = profiles[0]
    assert reaction.by_layer["aiohttp"] > 0  # it serves HTTP
