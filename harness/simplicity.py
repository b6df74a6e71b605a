"""What each pipeline costs a team to run and understand, counted from the source, not written down.

"Simple and intuitive" is not a property a run can measure, so its verdict stays "not shown"; what
can be counted is shown beside it: the processes a pipeline needs, the network hops a reaction
crosses, the configuration keys someone must decide, and the lines of the pipeline's own code.
Which file and which option group belongs to which pipeline is the data below; the counting is
done on the files as they are.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from facts import kafka_broker, topology
from facts.paths import REPO

# Every pipeline runs these; the code shared by all pipelines is not counted for any of them.
SHARED_PROCESSES = topology.SERVICES
PROCESSES: dict[str, tuple[str, ...]] = {
    "sync": SHARED_PROCESSES,
    "sync-resilient": SHARED_PROCESSES,
    "async": (*SHARED_PROCESSES, "kafka"),
}
# The Toxiproxy links a reaction crosses (each is one hop between two processes), plus client -> reaction.
LINKS: dict[str, tuple[str, ...]] = {
    "sync": (topology.PROXY_NOTIFICATION.name, topology.PROXY_PUSH.name),
    "sync-resilient": (topology.PROXY_NOTIFICATION.name, topology.PROXY_PUSH.name),
    "async": (topology.PROXY_KAFKA_PRODUCE.name, topology.PROXY_KAFKA_CONSUME.name, topology.PROXY_PUSH.name),
}
# A pipeline's own code: what exists only because the services talk this way.
CODE: dict[str, tuple[str, ...]] = {
    "sync": ("targets/reaction/grpc_transport.py", "targets/notification/grpc_server.py"),
    "sync-resilient": (
        "targets/reaction/grpc_transport.py",
        "targets/reaction/breaker.py",
        "targets/notification/grpc_server.py",
    ),
    "async": (
        "targets/reaction/kafka_transport.py",
        "targets/notification/consumer.py",
        "targets/notification/dead_letter.py",
    ),
}
# The services' command-line option groups (by title) that only one pipeline reads; options outside
# any group are read by every pipeline and count for each.
SERVICES = ("targets/reaction/__main__.py", "targets/notification/__main__.py")
OPTION_GROUPS: dict[str, tuple[str, ...]] = {
    "sync": ("gRPC",),
    "sync-resilient": ("gRPC", "sync-resilient: gRPC retry policy", "sync-resilient: circuit breaker"),
    "async": ("async", "Kafka consumer"),
}
SHARED_GROUPS = ("delivery (both entry paths)",)


@dataclass(frozen=True)
class Cost:
    pipeline: str
    processes: int
    hops: int
    config_keys: int  # service options it reads + the broker's settings for async
    own_lines: int  # non-blank, non-comment lines of its own code
    files: tuple[str, ...]


def code_lines(path: Path) -> int:
    """Lines that are neither blank, nor comments, nor docstrings."""
    source = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    return sum(
        1
        for i, line in enumerate(source.splitlines(), start=1)
        if line.strip() and not line.strip().startswith("#") and i not in docstrings
    )


class _Options(ast.NodeVisitor):
    """Counts `add_argument` calls per argument group, in source order (a group variable is reused)."""

    def __init__(self) -> None:
        self.groups: dict[str, str] = {}  # variable -> title of the group it is bound to now
        self.counts: dict[str | None, int] = {}

    def visit_Assign(self, node: ast.Assign) -> None:
        call = node.value
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "add_argument_group"
            and call.args
            and isinstance(call.args[0], ast.Constant)
            and isinstance(node.targets[0], ast.Name)
        ):
            self.groups[node.targets[0].id] = str(call.args[0].value)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
            owner = node.func.value
            group = self.groups.get(owner.id) if isinstance(owner, ast.Name) else None
            self.counts[group] = self.counts.get(group, 0) + 1
        self.generic_visit(node)


def option_groups(path: Path) -> dict[str | None, int]:
    """Options per argument group title (None: not in a group), read from the `add_argument` calls."""
    visitor = _Options()
    visitor.visit(ast.parse(path.read_text()))
    return visitor.counts


def cost(pipeline: str, repo: Path = REPO) -> Cost:
    keys = 0
    for service in SERVICES:
        per_group = option_groups(repo / service)
        keys += sum(n for g, n in per_group.items() if g is None or g in SHARED_GROUPS or g in OPTION_GROUPS[pipeline])
    if "kafka" in PROCESSES[pipeline]:
        keys += len(kafka_broker.properties("<data dir>"))
    files = CODE[pipeline]
    return Cost(
        pipeline=pipeline,
        processes=len(PROCESSES[pipeline]),
        hops=1 + len(LINKS[pipeline]),
        config_keys=keys,
        own_lines=sum(code_lines(repo / f) for f in files),
        files=files,
    )


def costs() -> list[Cost]:
    return [cost(p) for p in topology.PIPELINES]
