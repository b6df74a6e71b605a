"""A bare grpc.aio Notification server that answers at once (no delivery, no metrics, no tracing):
the gRPC ceiling of this machine for the sync hop's message, run by `bench capacity` in a process
of its own. `python -m harness.capacity.bare_grpc_server` prints its port, then serves until terminated."""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc
import uvloop

from facts import topology
from protos import reaction_pb2, reaction_pb2_grpc

REPLY = reaction_pb2.NotifyReply(delivered=True)


class Bare(reaction_pb2_grpc.NotificationServicer):
    async def Notify(self, request: reaction_pb2.ReactionEvent, context: object) -> reaction_pb2.NotifyReply:
        return REPLY


async def serve() -> None:
    server = grpc.aio.server()
    reaction_pb2_grpc.add_NotificationServicer_to_server(Bare(), server)
    port = server.add_insecure_port(f"{topology.BIND_HOST}:0")
    await server.start()
    print(port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(grace=None)


if __name__ == "__main__":
    uvloop.run(serve())  # the services' loop (targets/runtime.py)
    sys.exit(0)
