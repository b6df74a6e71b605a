"""`bench`: the harness' command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from facts import paths, topology
from harness import doctor, provision, supervisor

EXIT_USAGE = 2

if TYPE_CHECKING:
    from harness.replicas import Replicas
    from harness.run import StackOpener
    from loadtests.profile import Capacities


def _state_file() -> paths.Path:
    return paths.state_dir() / "stack.json"


def cmd_doctor(_args: argparse.Namespace) -> int:
    return doctor.main([])


def cmd_provision(_args: argparse.Namespace) -> int:
    return provision.main()


def cmd_up(args: argparse.Namespace) -> int:
    from harness.measured_tracing import tracing_of, words
    from harness.stack import Stack

    state = _state_file()
    if state.exists():
        print(f"bench up: a stack is already recorded in {state}; run `bench down` first", file=sys.stderr)
        return 1
    work = paths.state_dir() / "stack"
    shutil.rmtree(work, ignore_errors=True)
    stack = None
    # One handler from the first start to the last line: a Ctrl-C between "stack up" and the
    # foreground loop must still stop everything, not escape as a traceback.
    try:
        with supervisor.terminating_signals():
            stack = Stack(
                work, args.pipeline, detached=not args.foreground, state_file=state, replicas=_replicas(args),
                tracing=tracing_of(args.tracing),
            ).up()  # fmt: skip
            _print_up(args.pipeline, work, words(args.tracing))
            if not stack.replicas.default:
                print(f"  topology       {stack.replicas.describe()}")
            if not args.foreground:
                print("stop it with `bench down`")
                return 0
            print("running in the foreground: Ctrl-C stops everything")
            while True:
                time.sleep(1)
    except (provision.ProvisionError, supervisor.StartError, RuntimeError, ValueError) as e:
        print(f"bench up: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if stack is None:  # Stack.up stopped what it had started
            print("bench up: interrupted; everything started was stopped", file=sys.stderr)
            return 130
        if not args.foreground:
            print("bench up: interrupted, the stack stays up; stop it with `bench down`", file=sys.stderr)
        return 0
    finally:
        if stack is not None and args.foreground:
            # A SIGTERM or second Ctrl-C now: stop_all still stops every component (without grace).
            with supervisor.terminating_signals(), contextlib.suppress(KeyboardInterrupt):
                stack.down()


def _print_up(pipeline: str, work: Path, tracing: str) -> None:
    print(f"stack up, pipeline {pipeline}; logs in {work / 'logs'}")
    print(f"  reaction API   {topology.url(topology.REACTION_HTTP_PORT, topology.REACTIONS_PATH)}")
    print(f"  OpenAPI        {topology.url(topology.REACTION_HTTP_PORT, topology.OPENAPI_PATH)}")
    print(f"  push sink      {topology.url(topology.PUSHSINK_HTTP_PORT, topology.SINK_STATS_PATH)}")
    print(f"  Prometheus     {topology.url(topology.PROMETHEUS_PORT)}")
    print(f"  Toxiproxy API  {topology.url(topology.TOXIPROXY_API_PORT, '/proxies')}")
    print(f"  Jaeger (traces) {topology.url(topology.JAEGER_QUERY_HTTP_PORT, '/search')}")
    print(f"  tracing        {tracing}")


def cmd_down(_args: argparse.Namespace) -> int:
    try:
        stopped = supervisor.stop_from_state(_state_file())
    except supervisor.StartError as e:
        print(f"bench down: {e}", file=sys.stderr)
        return 1
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing recorded as running")
    return 0


def _replicas(args: argparse.Namespace) -> Replicas:
    """The notification replicas and balancer asked for (harness/replicas.py); TopologyError if impossible."""
    from harness.replicas import Replicas

    return Replicas.of(getattr(args, "replicas", 1), getattr(args, "balancer", None))


def _stack_kind(
    kind: str, replicas: Replicas | None = None, tracing: str | None = None
) -> tuple[tuple[str, ...], StackOpener]:
    """What a process fault may target on this kind of stack, and how a run opens it. Asks Docker
    for a compose stack; starts nothing. The command line chooses: a run never imports compose/.
    `tracing`: the native services' setting (harness/measured_tracing.py; compose's trace everything)."""
    from chaos import scenario as scenarios

    if kind == "compose":
        from compose.control import ComposeStack

        probe = ComposeStack()
        processes = tuple(p for p in scenarios.PROCESSES + scenarios.CLUSTER_PROCESSES if probe.has_service(p))
        return processes, lambda _work_dir, pipeline: ComposeStack(pipeline)  # `docker compose up` started it
    from harness.measured_tracing import tracing_of
    from harness.stack import Stack, Tracing

    traced = tracing_of(tracing) if tracing is not None else Tracing()
    if replicas is not None and not replicas.default:
        return scenarios.PROCESSES + replicas.processes(), lambda work_dir, pipeline: Stack(
            work_dir, pipeline, tracing=traced, replicas=replicas
        )
    return scenarios.PROCESSES, lambda work_dir, pipeline: Stack(work_dir, pipeline, tracing=traced)


def cmd_run(args: argparse.Namespace) -> int:
    from chaos import scenario as scenarios
    from harness import run
    from harness.plan import PlanError, make_plan

    if args.stack not in run.STACK_KINDS:  # argparse checks a default (from the environment) against no choices
        print(f"bench run: SYNC_ASYNC_BENCH_STACK={args.stack!r}: must be one of {', '.join(run.STACK_KINDS)}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    pipelines = list(topology.PIPELINES) if "all" in args.pipeline else list(dict.fromkeys(args.pipeline))
    refs = scenarios.expand(args.scenario)
    try:
        replicas = _replicas(args)
    except ValueError as e:
        print(f"bench run: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not replicas.default and args.stack != "native":
        print("bench run: --replicas runs on the native stack only", file=sys.stderr)
        return EXIT_USAGE
    from harness import measured_tracing
    from harness.capacity.report import capacities_from, last_capacities

    try:
        tracing = args.tracing or measured_tracing.load().sample
        capacities = capacities_from(args.capacity) if args.capacity else last_capacities(args.stack)
    except ValueError as e:  # a tracing or capacity file that cannot be read
        print(f"bench run: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        processes, open_stack = _stack_kind(args.stack, replicas, tracing)
    except (OSError, RuntimeError) as e:
        print(f"bench run: cannot ask the {args.stack} stack what it runs: {e}", file=sys.stderr)
        return 1
    if capacities is not None and capacities.tracing not in (None, tracing) and args.stack == "native":
        print(f"bench run: note: {capacities.source} was measured with tracing {capacities.tracing}; "
              f"this run traces {tracing}, so its capacity-relative rates are not quite that capacity's",
              file=sys.stderr)  # fmt: skip
    try:
        the_plan = make_plan(
            pipelines, refs, args.duration, args.quick, processes, capacities, args.repeat, args.time_scale,
            replicas=replicas.count,
        )  # fmt: skip
    except PlanError as e:
        print(f"bench run: invalid scenario, nothing started:\n{e}", file=sys.stderr)
        return EXIT_USAGE
    if args.stack == "native":
        try:
            provision.locate()
        except provision.ProvisionError as e:
            print(f"bench run: {e}", file=sys.stderr)
            return EXIT_USAGE
    capacity_file = Path(capacities.source) if capacities else None
    return run.run(the_plan, open_stack, runtime=args.stack, processes=args.processes, capacity_file=capacity_file)


def cmd_validate(args: argparse.Namespace) -> int:
    from chaos import scenario as scenarios
    from harness.plan import PlanError, make_plan

    refs = scenarios.expand(args.scenario)
    if args.scenario == ["all"] and args.kafka == "cluster":  # and those written for the cluster profile
        refs += sorted(str(p) for p in (paths.REPO / "compose" / "scenarios").glob("*.yaml"))
    if args.scenario == ["all"] and args.replicas > 1:  # and those written for the replicated topology
        refs += scenarios.expand(["replicas"])
    try:
        processes = scenarios.PROCESSES + (scenarios.CLUSTER_PROCESSES if args.kafka == "cluster" else ())
        if args.replicas > 1:
            processes += _replicas(args).processes()
        from harness.capacity.report import last_capacities

        capacities = last_capacities()
    except ValueError as e:  # the replicas, or this machine's last capacity file
        print(f"bench validate: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        the_plan = make_plan(
            list(topology.PIPELINES), refs, None, False, processes, capacities or _unmeasured(),
            replicas=args.replicas,
        )  # fmt: skip
    except (PlanError, ValueError) as e:
        print(f"bench validate: invalid scenario:\n{e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"ok: {len(refs)} scenario(s), {len(the_plan.cells)} cell(s)")
    if capacities is None:
        print("capacity-relative rates checked for their form only: no `bench capacity` on this machine yet")
    return 0


def _unmeasured() -> Capacities:
    """Every capacity a relative rate may name, at 1/s: validation checks a rate's form and what it
    names, and a run needs the real ones (it refuses to start without them)."""
    from harness.capacity.report import ACCEPTANCE
    from loadtests.profile import Capacities

    names = [*topology.PIPELINES, ACCEPTANCE.format(pipeline="async")]
    return Capacities(rates=dict.fromkeys(names, 1.0), source="(no capacity measured)")


def cmd_capacity(args: argparse.Namespace) -> int:
    from harness.capacity import command, report

    pipelines = list(topology.PIPELINES) if args.pipeline == "all" else [args.pipeline]
    try:
        replicas = _replicas(args)
    except ValueError as e:
        print(f"bench capacity: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.if_missing and not replicas.default:
        print(f"bench capacity: --if-missing measures anyway with {replicas.count} replicas (such a capacity is "
              "never kept as this machine's, so there is none to reuse)", file=sys.stderr)  # fmt: skip
    elif args.if_missing:
        try:
            known = report.last_capacities()
        except ValueError as e:
            print(f"bench capacity: {e}; measuring again", file=sys.stderr)
            known = None
        if known is not None and all(p in known.rates for p in pipelines):
            rates = ", ".join(f"{n} {r:.0f}/s" for n, r in known.rates.items())
            print(f"bench capacity: this machine's last capacity is used ({rates}), from {known.source}; "
                  "`bench capacity` without --if-missing measures again")  # fmt: skip
            return 0
    return command.main(pipelines, args.quick, None if replicas.default else replicas, args.tracing)


def cmd_report(args: argparse.Namespace) -> int:
    from harness import report

    return report.main(args.run_dir, claims_file=args.claims, screenshot=args.screenshot)


def cmd_compare(args: argparse.Namespace) -> int:
    from harness import compare

    return compare.main(args.base, args.new, args.thresholds, args.format, args.all, args.noise)


def cmd_noise(args: argparse.Namespace) -> int:
    from harness import noise, result

    try:
        runs = [result.load(r) for r in args.runs]
        floor = noise.measure(runs)
    except result.ResultsError as e:
        print(f"bench noise: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        out = floor.write(args.out or runs[0].root / "noise.json")
    except OSError as e:
        print(f"bench noise: cannot write the floors: {e}", file=sys.stderr)
        return 1
    print(f"{floor.method}: {len(floor.floors)} metric(s) -> {out}\nuse it: bench compare BASE NEW --noise {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench", description="sync (gRPC) vs async (Kafka) benchmark harness")
    sub = p.add_subparsers(dest="command", required=True)
    commands: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
        "doctor": ("check the prerequisites and say how to fix a missing one", cmd_doctor),
        "provision": (
            "fetch/build Kafka, Toxiproxy, Jaeger; install Prometheus, HAProxy, wrk, Chromium; reserve ports",
            cmd_provision,
        ),
        "up": ("start the whole stack (detached unless --foreground)", cmd_up),
        "down": ("stop the stack `bench up` started", cmd_down),
        "run": ("run pipelines through scenarios; writes runs/<id>/<pipeline>--<scenario>/result.json", cmd_run),
        "capacity": (
            "find each pipeline's highest sustainable rate and why it broke, with the bare ceilings; "
            "writes runs/<id>/capacity.json and the last capacity of this machine",
            cmd_capacity,
        ),
        "validate": ("validate scenario files (and their load profiles) without starting anything", cmd_validate),
        "report": (
            "write RUN_DIR/report.html (charts) and RUN_DIR/report.md (summary, the article's claims)",
            cmd_report,
        ),
        "compare": (
            "compare two runs; exit 1 when a threshold is crossed, 3 when a cell cannot vouch for its numbers",
            cmd_compare,
        ),
        "noise": ("the noise floor of every metric from an A/A comparison, for `bench compare --noise`", cmd_noise),
    }
    subs = {}
    for name, (help_text, fn) in commands.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(func=fn)
        subs[name] = sp
    subs["up"].add_argument("--pipeline", choices=topology.PIPELINES, default=topology.DEFAULT_PIPELINE)
    subs["up"].add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops all")
    subs["up"].add_argument(
        "--tracing", type=_tracing_setting, metavar="off|RATIO", default="1",
        help="the services' tracing: off, or the share of traces kept (default 1: every reaction, to browse in "
        "Jaeger; the runs' is harness/limits/tracing.yaml's)",
    )  # fmt: skip
    for name in ("up", "run", "capacity"):
        _add_replica_arguments(subs[name])
    from harness.plan import QUICK_SECONDS  # imported here, not at start-up
    from harness.run import STACK_KINDS

    run = subs["run"]
    run.add_argument(
        "--pipeline", nargs="+", choices=[*topology.PIPELINES, "all"], default=["all"], help="one or more, or all"
    )
    run.add_argument(
        "--scenario",
        nargs="+",
        default=["all"],
        help="shipped scenario names or YAML paths; 'all' (default): the default matrix; 'replicas': "
        "those of the replicated topology (chaos/scenarios/replicas/, with --replicas 2 or 3)",
    )
    run.add_argument("--duration", type=float, help="seconds of load per cell (the timeline is scaled to it)")
    run.add_argument("--quick", action="store_true", help=f"cap each cell's load at {QUICK_SECONDS:g} s (CI)")
    run.add_argument(
        "--time-scale", type=float, default=1.0, metavar="F",
        help="every scenario's load and fault timeline times F (0.5: half as long)",
    )  # fmt: skip
    run.add_argument("--processes", type=_at_least_one, default=1, help="Locust worker processes")
    run.add_argument(
        "--tracing", type=_tracing_setting, metavar="off|RATIO",
        help="the services' tracing: off, or the share of traces kept (default: harness/limits/tracing.yaml's)",
    )  # fmt: skip
    run.add_argument(
        "--capacity", type=Path, metavar="FILE",
        help="a capacity.json for the capacity-relative rates (default: this machine's last `bench capacity`)",
    )  # fmt: skip
    run.add_argument(
        "--repeat", type=int, default=1, metavar="N",
        help="play each cell N times, interleaved (sync and async alternate); intervals then come from the repetitions",
    )  # fmt: skip
    run.add_argument(
        "--stack",
        choices=STACK_KINDS,
        default=os.environ.get("SYNC_ASYNC_BENCH_STACK", "native"),
        help="native: start the stack here; compose: drive the one `docker compose up` started (compose/README.md)",
    )
    cap = subs["capacity"]
    cap.add_argument(
        "--pipeline", choices=[*topology.PIPELINES, "all"], default="all", help="the pipeline to search (default: all)"
    )
    cap.add_argument(
        "--quick", action="store_true", help="short steps, coarse bisection (harness/limits/capacity.yaml)"
    )
    cap.add_argument(
        "--if-missing", action="store_true",
        help="measure only when this machine has no capacity of these pipelines yet (what `make bench` does); "
        "with --replicas above 1 it always measures: such a capacity is never kept as the machine's",
    )  # fmt: skip
    cap.add_argument(
        "--tracing", type=_tracing_setting, metavar="off|RATIO",
        help="the search's tracing: off, or the share of traces kept (default: harness/limits/tracing.yaml's; "
        "another one is not kept as this machine's last capacity)",
    )  # fmt: skip
    subs["validate"].add_argument("scenario", nargs="*", default=["all"])
    subs["validate"].add_argument(
        "--replicas", type=int, choices=range(1, topology.NOTIFICATION_REPLICAS_MAX + 1), default=1,
        help="the notification replicas to validate against (2, 3: also the scenarios in chaos/scenarios/replicas/)",
    )  # fmt: skip
    subs["validate"].add_argument(
        "--kafka", choices=("single", "cluster"), default="single",
        help="the brokers to validate process faults against: cluster = compose's three-broker profile",
    )  # fmt: skip
    rep = subs["report"]
    rep.add_argument("run_dir", help="a run folder (runs/<id>, runs/latest) or its run.json")
    rep.add_argument("--claims", type=Path, help="verdict rules (default: harness/claims.yaml)")
    rep.add_argument("--screenshot", action="store_true", help="also write report.png with headless Chromium")
    cmp = subs["compare"]
    cmp.add_argument("base", help="the reference run folder or run.json (e.g. main's)")
    cmp.add_argument("new", help="the run folder or run.json to judge")
    cmp.add_argument("--thresholds", type=Path, help="thresholds file (default: harness/thresholds/default.yaml)")
    cmp.add_argument("--format", choices=["text", "markdown"], default="text")
    cmp.add_argument("--all", action="store_true", help="list every metric, not only thresholded and key ones")
    cmp.add_argument("--noise", type=Path, help="a noise floor from `bench noise`: also fail on a change beyond it")
    noise_cmd = subs["noise"]
    noise_cmd.add_argument(
        "runs", nargs="+", help="one run made with --repeat 2+, or two runs of the same matrix (A/A)"
    )
    noise_cmd.add_argument("--out", type=Path, help="where to write the floors (default: RUN/noise.json)")
    return p


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _tracing_setting(text: str) -> str:
    from harness.measured_tracing import tracing_of

    try:
        tracing_of(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _add_replica_arguments(sp: argparse.ArgumentParser) -> None:
    from harness.replicas import BALANCERS

    sp.add_argument(
        "--replicas", type=int, choices=range(1, topology.NOTIFICATION_REPLICAS_MAX + 1), default=1,
        help="notification replicas (harness/replicas.py; default 1, the single-replica stack)",
    )  # fmt: skip
    sp.add_argument(
        "--balancer", choices=BALANCERS,
        help="how sync reaches the replicas: haproxy (default with 2+), client (gRPC round_robin), none (1 replica)",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
