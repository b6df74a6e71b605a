"""The orchestrator: provisioning, process supervision, runs, ledger, reports, compare."""
