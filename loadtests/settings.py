"""The load generator's command-line options (added to Locust's parser) and their validated form."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facts import topology
from loadtests.arrivals import ArrivalProcess
from loadtests.outcome import OUTCOMES_GLOB, SERIES_GLOB, SUMMARY_GLOB
from loadtests.profile import Profile, ProfileError, find_profile
from loadtests.reaction import ENDPOINTS, REACTIONS

# Locust owns --profile (it labels test runs), hence --load-profile.
DEFAULT_PROFILE = "smoke"
DEFAULT_OUTCOMES_DIR = "runs/loadgen/{run_id}"
RUN_ID_PLACEHOLDER = "{run_id}"
# A wakeup later than this would be a schedule lag that makes a cell generator-bound by itself.
MAX_WAKE_INTERVAL_SECONDS = 0.05
# Standalone Locust wakes for every arrival and answer; the bench's cells set their own (harness/limits/generator.yaml).
DEFAULT_WAKE_INTERVAL_SECONDS = 0.0
DEFAULT_SEED = 1
DEFAULT_MAX_IN_FLIGHT = 1000  # requests awaiting an answer, all workers together
DEFAULT_REQUEST_TIMEOUT_SECONDS = 10.0


class SettingsError(ValueError):
    pass


def add_arguments(parser: Any) -> None:
    """Register on Locust's parser (`events.init_command_line_parser`); all but the port show in the web UI."""
    # Straight on the parser, not in a group: only LocustArgumentParser.add_argument knows include_in_web_ui.
    group = parser
    group.add_argument(
        "--load-profile",
        default=DEFAULT_PROFILE,
        help="profile name (file stem in loadtests/profiles/, or a unique prefix such as 'surge') or a YAML path",
    )
    group.add_argument(
        "--arrivals",
        default=str(ArrivalProcess.POISSON),
        choices=[str(p) for p in ArrivalProcess],
        help="inter-arrival times: constant spacing or Poisson (exponential, seeded)",
    )
    group.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="seed of the arrival times and the posts, users and kinds drawn (ids are random)",
    )
    group.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="compress (or stretch) the profile's timeline to this many seconds; 0 keeps the profile's own",
    )
    group.add_argument("--rate-scale", type=float, default=1.0, help="multiply every rate of the profile")
    group.add_argument(
        "--max-in-flight",
        type=int,
        default=DEFAULT_MAX_IN_FLIGHT,
        help="cap on requests awaiting an answer, all workers together; arrivals over it are counted as missed",
    )
    group.add_argument(
        "--request-timeout",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT_SECONDS,
        help="seconds before a request's outcome is 'unknown'",
    )
    group.add_argument(
        "--wake-interval",
        type=float,
        default=DEFAULT_WAKE_INTERVAL_SECONDS,
        help="wake at most this often (seconds), starting the arrivals due together and reading the answers "
        "that came in: a wakeup costs more CPU than a request on a VM; arrivals start up to this late. "
        "0 wakes for every arrival and every answer",
    )
    group.add_argument(
        "--endpoint",
        choices=list(ENDPOINTS),
        default=REACTIONS,
        help="what each arrival sends: the reactions POST, or GET /healthz (to measure the generator itself)",
    )
    group.add_argument("--post-count", type=int, default=1000, help="reactions go to post-0 .. post-(N-1)")
    group.add_argument("--reacting-users", type=int, default=10000, help="reactions come from user-0 .. user-(N-1)")
    group.add_argument(
        "--outcomes-dir",
        default=DEFAULT_OUTCOMES_DIR,
        help=f"where each worker writes {OUTCOMES_GLOB}, {SERIES_GLOB} and {SUMMARY_GLOB} (* its number); "
        "'{run_id}' is replaced by the run id",
    )
    group.add_argument(
        "--request-events",
        action="store_true",
        default=False,
        help="fire Locust's request event for every request (for request listeners of your own; costs CPU): "
        "by default Locust's stats get each second's requests at once",
    )
    group.add_argument(
        "--metrics-port",
        type=int,
        default=topology.LOADGEN_METRICS_PORT,
        include_in_web_ui=False,
        help="Prometheus /metrics port on 127.0.0.1 (master or single process); 0 disables",
    )


@dataclass(frozen=True)
class Settings:
    profile: Profile  # already compressed / rate-scaled
    profile_ref: str
    process: ArrivalProcess
    seed: int
    max_in_flight: int
    request_timeout: float
    post_count: int
    reacting_users: int
    outcomes_dir: str
    metrics_port: int
    request_events: bool = False
    endpoint: str = REACTIONS
    wake_interval: float = DEFAULT_WAKE_INTERVAL_SECONDS

    @classmethod
    def from_options(cls, options: argparse.Namespace | Any) -> Settings:
        """Validate everything before load starts; errors say which option and why."""

        def positive(name: str, value: float) -> None:
            if not value > 0:
                raise SettingsError(f"--{name.replace('_', '-')} must be > 0, got {value}")

        for name in ("max_in_flight", "request_timeout", "post_count", "reacting_users", "rate_scale"):
            positive(name, getattr(options, name))
        if options.duration < 0:
            raise SettingsError(f"--duration must be >= 0, got {options.duration}")
        wake_interval = float(getattr(options, "wake_interval", DEFAULT_WAKE_INTERVAL_SECONDS))
        if not 0 <= wake_interval <= MAX_WAKE_INTERVAL_SECONDS:
            raise SettingsError(
                f"--wake-interval must be within 0 and {MAX_WAKE_INTERVAL_SECONDS} s, got {wake_interval}"
            )
        endpoint = str(getattr(options, "endpoint", REACTIONS))
        if endpoint not in ENDPOINTS:
            raise SettingsError(f"--endpoint must be one of {', '.join(ENDPOINTS)}, got {endpoint!r}")
        try:
            process = ArrivalProcess(options.arrivals)
        except ValueError:
            raise SettingsError(f"--arrivals must be one of {', '.join(ArrivalProcess)}") from None
        try:
            profile = find_profile(options.load_profile)
        except ProfileError as exc:
            raise SettingsError(f"--load-profile: {exc}") from None
        profile = profile.scaled(duration=options.duration or None, rate_factor=options.rate_scale)
        return cls(
            profile=profile,
            profile_ref=options.load_profile,
            process=process,
            seed=int(options.seed),
            max_in_flight=int(options.max_in_flight),
            request_timeout=float(options.request_timeout),
            post_count=int(options.post_count),
            reacting_users=int(options.reacting_users),
            outcomes_dir=str(options.outcomes_dir),
            metrics_port=int(options.metrics_port),
            request_events=bool(getattr(options, "request_events", False)),
            endpoint=endpoint,
            wake_interval=wake_interval,
        )

    def outcomes_dir_for(self, run_id: str) -> Path:
        return Path(self.outcomes_dir.replace(RUN_ID_PLACEHOLDER, run_id))

    def describe(self) -> dict[str, Any]:
        """What a worker writes into its summary: enough to reproduce the run."""
        return {
            "profile": self.profile.model_dump(mode="json"),
            "profile_ref": self.profile_ref,
            "arrivals": str(self.process),
            "seed": self.seed,
            "max_in_flight": self.max_in_flight,
            "request_timeout_seconds": self.request_timeout,
            "post_count": self.post_count,
            "reacting_users": self.reacting_users,
            "endpoint": self.endpoint,
            "wake_interval_seconds": self.wake_interval,
        }
