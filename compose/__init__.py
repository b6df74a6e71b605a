"""The harness in containers: generated config (`python -m compose.generate`), health probes and the
Docker-API stack that lets `bench run` drive a compose stack. See compose/README.md."""
