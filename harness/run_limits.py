"""The limits a run judges its cells by (harness/limits/*.yaml), read once when the run starts.

Read once: a file edited while a run plays must not change the rules halfway (or, half-written,
stop the run at its next cell); and read before the stack starts, a bad file stops the run at
once, named, with nothing to clean up.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import disturbance, generator_health, measured_tracing, memory


@dataclass(frozen=True)
class RunLimits:
    generator: generator_health.GeneratorLimits
    memory: memory.MemoryLimits
    disturbance: disturbance.DisturbanceLimits
    tracing: measured_tracing.MeasuredTracing

    @classmethod
    def load(cls) -> RunLimits:
        return cls(
            generator_health.load_limits(), memory.load_limits(), disturbance.load_limits(), measured_tracing.load()
        )
