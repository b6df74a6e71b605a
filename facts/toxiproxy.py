"""How the Toxiproxy process runs, natively and in compose: its environment, in one place."""

from __future__ import annotations

# Go's scheduler on one thread. Toxiproxy is the harness' instrument on the data path (two to three
# hops per reaction) and shares the machine's cores with what it measures: with a thread per core,
# each chunk it forwards (reader -> toxic chain -> writer goroutines) woke an idle thread, which on a
# 2-vCPU VM costs more than the copy. Measured under `wrk` POST on the development VM (README,
# "Toxiproxy on one thread"): 0.175 -> 0.13 ms of its CPU per sync reaction, 0.045 -> 0.03 per async
# one; at the sync capacity it used at most 0.24 of a core, so one thread leaves it room.
ENVIRONMENT: dict[str, str] = {"GOMAXPROCS": "1"}
