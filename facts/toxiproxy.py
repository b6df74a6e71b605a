"""How the Toxiproxy process runs, natively and in compose: its environment, in one place."""

from __future__ import annotations

# Go's scheduler on one thread. Toxiproxy is the harness' instrument on the data path (two to three
# hops per reaction) and shares the machine's cores with what it measures: with a thread per core,
# each chunk it forwards (reader -> toxic chain -> writer goroutines) woke an idle thread, which on a
# 2-vCPU VM costs more than the copy. It uses well under a core at any capacity, so one thread is
# room enough; what it saves is in PERFORMANCE.md ("Toxiproxy on one thread").
ENVIRONMENT: dict[str, str] = {"GOMAXPROCS": "1"}
