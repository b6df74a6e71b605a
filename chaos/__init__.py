"""Faults: scenario data, the timeline engine, the Toxiproxy adapter and process faults."""
