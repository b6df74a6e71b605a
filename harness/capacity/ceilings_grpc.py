"""The gRPC ceilings: a bare `grpc.aio` unary Notify loop through the same Toxiproxy link the
reaction service uses (each call delivers to the push sink: the sync hop as built, minus HTTP and
the reaction service), and the same loop against a server that answers at once (`grpc.bare`)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable

import grpc

from facts import topology
from facts.lifetime import dying_with_this_process
from harness.capacity.ceilings import Ceiling, failed, sample_event
from protos import reaction_pb2_grpc
from targets.wire import PIPELINE_METADATA_KEY


async def _grpc_loop(target: str, seconds: float, concurrency: int) -> tuple[int, int, float]:
    ok = errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reaction_pb2_grpc.NotificationStub(channel)
        await asyncio.wait_for(channel.channel_ready(), 10)
        metadata = ((PIPELINE_METADATA_KEY, "ceiling"),)
        start = time.monotonic()
        end = start + seconds

        async def worker() -> None:
            nonlocal ok, errors
            while time.monotonic() < end:
                try:
                    await stub.Notify(sample_event(), timeout=5.0, metadata=metadata)
                    ok += 1
                except grpc.aio.AioRpcError:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok, errors, time.monotonic() - start


def grpc_notify(seconds: float, concurrency: int = 64, cpu_of: Callable[[], float] | None = None) -> Ceiling:
    name, tool = "grpc.notify", "grpc.aio unary loop"
    what = (
        f"Notify through the Toxiproxy 'notification' link, {concurrency} calls in flight; each call "
        "delivers to the push sink (no toxic): the notification service has no switch to turn delivery off"
    )
    try:
        before = time.process_time()
        ok, errors, took = asyncio.run(_grpc_loop(topology.PROXY_NOTIFICATION.listen, seconds, concurrency))
        cpu = time.process_time() - before
    except (grpc.aio.AioRpcError, TimeoutError, OSError) as e:
        return failed(name, tool, what, e)
    return Ceiling(
        name=name,
        tool=tool,
        what=what,
        per_second=ok / took,
        count=ok + errors,
        seconds=took,
        errors=errors,
        cpu_seconds_per_1000=cpu / (ok + errors) * 1000 if ok + errors else None,
    )


def grpc_bare(seconds: float, concurrency: int = 64) -> Ceiling:
    """The same loop against a server that answers at once (harness/capacity/bare_grpc_server.py, its own
    process, no Toxiproxy): what grpc.aio itself carries on this machine, both ends in Python."""
    name, tool = "grpc.bare", "grpc.aio unary loop"
    what = f"Notify to a bare grpc.aio server that answers at once (no delivery), {concurrency} calls in flight"
    cmd = [sys.executable, "-m", "harness.capacity.bare_grpc_server"]
    try:
        server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=dying_with_this_process())
    except OSError as e:
        return failed(name, tool, what, e)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().strip() or 0)
        if not port:
            raise RuntimeError(f"the bare gRPC server did not start (exit {server.poll()})")
        before = time.process_time()
        ok, errors, took = asyncio.run(_grpc_loop(f"{topology.HOST}:{port}", seconds, concurrency))
        cpu = time.process_time() - before
    except (grpc.aio.AioRpcError, TimeoutError, OSError, RuntimeError) as e:
        return failed(name, tool, what, e)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return Ceiling(
        name=name, tool=tool, what=what, per_second=ok / took, count=ok + errors, seconds=took, errors=errors,
        cpu_seconds_per_1000=cpu / (ok + errors) * 1000 if ok + errors else None,
    )  # fmt: skip
