"""The project's import rules, read from the source (no pytest here: tests/test_layout.py runs them).

The same rules as ``../shared/tools/check_layout.py``, and a bit stricter where the layout says so:

1. packages sit on floors (``FLOORS``, bottom to top); no module imports a package on a higher
   floor (harness/ is the top floor, so nothing below it imports it), and facts/ imports nothing
   of the project; a package that is on no floor is a problem too;
2. no import cycle between top-level packages (this also covers packages on one floor);
3. no import cycle between modules; every import statement counts, inside functions and
   ``if TYPE_CHECKING:`` blocks too, and relative imports are resolved;
4. generated protobuf stubs (``*_pb2.py``, ``*_pb2_grpc.py``) and ``generated`` folders are skipped.

``build_graph`` reads a source tree into a module graph; ``check`` applies the rules to any graph,
so they can run on a synthetic one; ``problems`` does both on a tree.
"""

from __future__ import annotations

import ast
import collections
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

# The floor table, bottom to top. A package may import packages on its own floor or below;
# packages sharing a floor must not import each other in a cycle (rule 2).
FLOORS: tuple[tuple[str, ...], ...] = (
    ("facts",),  # the base: ports and names, paths, quantiles, probes, Kafka broker settings
    ("protos",),  # the .proto and its generated stubs
    ("targets", "loadtests", "chaos"),  # the system under test, the load, the faults
    ("dashboards",),  # reads the metric names of targets, loadtests and chaos
    ("compose",),  # the stack in containers, with the dashboards' generated files
    ("harness",),  # the orchestrator and command line
)

NOT_PACKAGES = frozenset({"tests", "build", "dist"})
STUB_SUFFIXES = ("_pb2.py", "_pb2_grpc.py")
MAX_CYCLES = 100  # per graph: enough to act on, and a guard against a tangle that has millions

Graph = Mapping[str, Iterable[str]]


# --- reading the tree ------------------------------------------------------------------------


def packages(root: Path) -> list[str]:
    """Top-level folders that are Python packages (tests/, build/, dist/ and hidden folders aside)."""
    return sorted(
        d.name
        for d in root.iterdir()
        if d.is_dir() and (d / "__init__.py").is_file() and d.name not in NOT_PACKAGES and not d.name.startswith(".")
    )


def modules(root: Path) -> dict[Path, str]:
    """Every module of the project's packages, by path: ``a/b/c.py`` -> ``a.b.c``, ``a/b/__init__.py`` -> ``a.b``."""
    found: dict[Path, str] = {}
    for package in packages(root):
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "generated" in parts or path.name.endswith(STUB_SUFFIXES):
                continue
            found[path] = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return found


def imported_names(source: str, module: str, is_package: bool) -> list[str]:
    """Every dotted name an import statement anywhere in ``source`` may load (relative ones made absolute).

    ``from a.b import c`` gives ``a.b`` and ``a.b.c`` (``c`` may be a module or a name in ``a.b``).
    """
    package = module if is_package else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                anchor = package.split(".") if package else []
                if node.level - 1 >= len(anchor):
                    continue  # above the top-level package: not an import of the project
                base = ".".join([*anchor[: len(anchor) - (node.level - 1)], *([node.module] if node.module else [])])
            if base:
                names += [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]
    return names


def build_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project's modules it imports (every module of the tree is a key)."""
    mods = modules(root)
    known = set(mods.values())

    def resolve(name: str) -> str:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {mod: set() for mod in mods.values()}
    for path, mod in mods.items():
        for name in imported_names(path.read_text(encoding="utf-8"), mod, path.name == "__init__.py"):
            target = resolve(name)
            if target and target != mod:
                graph[mod].add(target)
    return graph


# --- the rules ---------------------------------------------------------------------------------


def top(module: str) -> str:
    return module.partition(".")[0]


def floor_index(floors: Sequence[Sequence[str]] = FLOORS) -> dict[str, int]:
    """Package -> its floor (0 at the bottom); a package named twice is an error in the table."""
    index: dict[str, int] = {}
    for level, names in enumerate(floors):
        for name in names:
            if name in index:
                raise ValueError(f"package {name} is on floors {index[name]} and {level}")
            index[name] = level
    return index


def cycles(graph: Graph, limit: int = MAX_CYCLES) -> list[list[str]]:
    """Every elementary cycle once, as ``[a, b, ..., a]`` starting at its smallest node; at most ``limit``."""
    succ: dict[str, list[str]] = collections.defaultdict(list)
    pred: dict[str, set[str]] = collections.defaultdict(set)
    for node, targets in graph.items():
        succ[node] = sorted(set(targets))
        for t in succ[node]:
            pred[t].add(node)
    nodes = sorted(set(succ) | set(pred))

    def reach(start: str, step: Mapping[str, Iterable[str]]) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in step.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def through(start: str, allowed: set[str], path: list[str]) -> Iterator[list[str]]:
        for nxt in succ.get(path[-1], ()):
            if nxt == start:
                yield [*path, start]
            elif nxt in allowed and nxt not in path:
                yield from through(start, allowed, [*path, nxt])

    def every() -> Iterator[list[str]]:
        for start in nodes:
            # A cycle whose smallest node is `start` stays in its strongly connected component.
            component = reach(start, succ) & reach(start, pred)
            yield from through(start, {n for n in component if n > start}, [start])

    return list(itertools.islice(every(), limit))


def package_graph(graph: Graph) -> dict[str, dict[str, list[str]]]:
    """Package -> package it imports -> the modules that import it (sorted)."""
    importers: dict[str, dict[str, set[str]]] = collections.defaultdict(lambda: collections.defaultdict(set))
    for mod, targets in graph.items():
        for t in targets:
            if top(mod) != top(t):
                importers[top(mod)][top(t)].add(mod)
    return {p: {q: sorted(ms) for q, ms in sorted(qs.items())} for p, qs in sorted(importers.items())}


def _names(items: Sequence[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def check(graph: Graph, floors: Sequence[Sequence[str]] = FLOORS) -> list[str]:
    """The problems of a module graph, one human-readable line each (an empty list: the rules hold)."""
    floor = floor_index(floors)
    problems: list[str] = []

    seen_packages = sorted({top(m) for m in graph} | {top(t) for ts in graph.values() for t in ts})
    problems += [
        f"package {p}/ is on no floor (add it to FLOORS in tests/layout_rules.py)"
        for p in seen_packages
        if p not in floor
    ]

    for mod in sorted(graph):
        upward: dict[str, list[str]] = collections.defaultdict(list)
        for t in sorted(set(graph[mod])):
            if top(mod) in floor and top(t) in floor and floor[top(t)] > floor[top(mod)]:
                upward[top(t)].append(t)
        for pkg, targets in sorted(upward.items()):
            problems.append(
                f"upward import: {mod} imports {', '.join(targets)} "
                f"({pkg}/ on floor {floor[pkg]} sits above {top(mod)}/ on floor {floor[top(mod)]})"
            )

    packs = package_graph(graph)
    pack_cycles = cycles({p: list(qs) for p, qs in packs.items()})
    for cyc in pack_cycles:
        hops = "; ".join(f"{a}/ -> {b}/ in {_names(packs[a][b])}" for a, b in itertools.pairwise(cyc))
        problems.append(f"package cycle: {' -> '.join(cyc)} ({hops})")
    if len(pack_cycles) == MAX_CYCLES:
        problems.append(f"package cycles: the list stops at {MAX_CYCLES}")

    mod_cycles = cycles(graph)
    problems += [f"module cycle: {' -> '.join(cyc)}" for cyc in mod_cycles]
    if len(mod_cycles) == MAX_CYCLES:
        problems.append(f"module cycles: the list stops at {MAX_CYCLES}")
    return problems


def problems(root: Path, floors: Sequence[Sequence[str]] = FLOORS) -> list[str]:
    """The problems of the source tree at ``root`` (the project's root folder)."""
    return check(build_graph(root), floors)
