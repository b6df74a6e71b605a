"""The project's import rules (tests/layout_rules.py): on the real tree, and on synthetic graphs and trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import layout_rules
from tests.layout_rules import build_graph, check, cycles

ROOT = Path(__file__).resolve().parent.parent


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


# --- the real tree -----------------------------------------------------------------------------


def test_the_tree_keeps_the_rules() -> None:
    problems = layout_rules.problems(ROOT)
    if problems:
        pytest.fail(f"{len(problems)} layout problem(s):\n" + "\n".join(problems), pytrace=False)


def test_the_real_graph_is_read() -> None:
    # Guards the test above against passing on an empty graph.
    graph = build_graph(ROOT)
    assert {layout_rules.top(m) for m in graph} == {p for floor in layout_rules.FLOORS for p in floor}
    assert "facts" in layout_rules.package_graph(graph)["harness"]
    assert not any(m.endswith(("_pb2", "_pb2_grpc")) for m in graph)


def test_the_floor_table_names_each_package_once() -> None:
    floors = layout_rules.floor_index()
    assert floors["facts"] == 0
    assert floors["harness"] == max(floors.values())
    assert floors["targets"] == floors["loadtests"] == floors["chaos"]
    with pytest.raises(ValueError, match="package chaos is on floors 0 and 1"):
        layout_rules.floor_index((("chaos",), ("chaos",)))


# --- synthetic graphs --------------------------------------------------------------------------


def test_a_clean_graph_has_no_problem() -> None:
    graph = {
        "facts": set(),
        "facts.topology": set(),
        "protos": {"facts.topology"},
        "targets.reaction.api": {"protos", "facts.topology", "targets.metrics"},
        "targets.metrics": {"facts.topology"},
        "loadtests.metrics": {"facts.topology"},
        "chaos.engine": {"loadtests.metrics"},  # same floor, no cycle: allowed
        "dashboards.catalog": {"chaos.engine", "loadtests.metrics", "targets.metrics"},
        "compose.generate": {"dashboards.catalog", "facts.topology"},
        "harness.cli": {"harness.run", "compose.generate", "protos", "facts"},
        "harness.run": {"chaos.engine", "loadtests.metrics"},
    }
    assert check(graph) == []


def test_a_module_cycle_is_reported() -> None:
    graph = {
        "targets.a": {"targets.b"},
        "targets.b": {"targets.c", "facts.x"},
        "targets.c": {"targets.a"},
        "facts.x": set(),
    }
    assert check(graph) == ["module cycle: targets.a -> targets.b -> targets.c -> targets.a"]


def test_a_package_cycle_is_reported_even_on_one_floor() -> None:
    # No module cycle and no upward import: only the packages go round.
    graph = {
        "targets.a": {"loadtests.b"},
        "loadtests.b": set(),
        "loadtests.c": {"targets.d"},
        "targets.d": set(),
    }
    assert check(graph) == [
        "package cycle: loadtests -> targets -> loadtests (loadtests/ -> targets/ in loadtests.c; "
        "targets/ -> loadtests/ in targets.a)"
    ]


def test_upward_imports_are_reported() -> None:
    graph = {
        "targets.x": {"harness.y", "facts.z"},
        "facts.a": {"chaos.b"},
        "harness.y": set(),
        "chaos.b": set(),
        "facts.z": set(),
    }
    assert check(graph) == [
        "upward import: facts.a imports chaos.b (chaos/ on floor 2 sits above facts/ on floor 0)",
        "upward import: targets.x imports harness.y (harness/ on floor 5 sits above targets/ on floor 2)",
    ]


def test_an_upward_import_that_closes_a_cycle_is_reported_as_each() -> None:
    graph = {
        "chaos.scenario": {"harness", "harness.ledger"},
        "harness": set(),
        "harness.ledger": set(),
        "harness.cli": {"chaos.scenario"},
        "harness.run": {"chaos.scenario"},
        "harness.stack": {"chaos.toxiproxy"},
        "harness.results": {"chaos.scenario"},
        "chaos.toxiproxy": set(),
    }
    assert check(graph) == [
        "upward import: chaos.scenario imports harness, harness.ledger "
        "(harness/ on floor 5 sits above chaos/ on floor 2)",
        "package cycle: chaos -> harness -> chaos (chaos/ -> harness/ in chaos.scenario; "
        "harness/ -> chaos/ in harness.cli, harness.results, harness.run and 1 more)",
    ]


def test_a_package_on_no_floor_is_reported() -> None:
    assert check({"scripts.tool": {"facts.x"}, "facts.x": set()}) == [
        "package scripts/ is on no floor (add it to FLOORS in tests/layout_rules.py)"
    ]


def test_every_elementary_cycle_is_listed_once() -> None:
    # Two cycles on the same three nodes are two problems; each starts at its smallest node.
    graph = {"a": {"b", "c"}, "b": {"c", "a"}, "c": {"a", "b"}}
    assert cycles(graph) == [
        ["a", "b", "a"],
        ["a", "b", "c", "a"],
        ["a", "c", "a"],
        ["a", "c", "b", "a"],
        ["b", "c", "b"],
    ]
    assert len(cycles(graph, limit=2)) == 2


# --- synthetic source trees --------------------------------------------------------------------


def test_an_import_inside_a_function_counts(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "facts/__init__.py": "",
            "facts/a.py": "def later() -> None:\n    from targets import b\n",
            "targets/__init__.py": "",
            "targets/b.py": "import facts.a\n",
        },
    )
    graph = build_graph(root)
    assert graph == {"facts": set(), "facts.a": {"targets", "targets.b"}, "targets": set(), "targets.b": {"facts.a"}}
    assert check(graph) == [
        "upward import: facts.a imports targets, targets.b (targets/ on floor 2 sits above facts/ on floor 0)",
        "package cycle: facts -> targets -> facts (facts/ -> targets/ in facts.a; targets/ -> facts/ in targets.b)",
        "module cycle: facts.a -> targets.b -> facts.a",
    ]


def test_type_checking_and_relative_imports_count(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "loadtests/__init__.py": "from .plan import Plan\n",
            "loadtests/plan.py": (
                "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from loadtests.users import User\n"
            ),
            "loadtests/users/__init__.py": "from .. import plan\nfrom . import arrivals\n",
            "loadtests/users/arrivals.py": "from ... import nowhere\nimport json\n",
        },
    )
    graph = build_graph(root)
    assert graph == {
        "loadtests": {"loadtests.plan"},
        "loadtests.plan": {"loadtests.users"},
        "loadtests.users": {"loadtests", "loadtests.plan", "loadtests.users.arrivals"},
        "loadtests.users.arrivals": set(),
    }
    assert check(graph) == [
        "module cycle: loadtests -> loadtests.plan -> loadtests.users -> loadtests",
        "module cycle: loadtests.plan -> loadtests.users -> loadtests.plan",
    ]


def test_stubs_generated_folders_and_tests_are_skipped(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "facts/__init__.py": "",
            "protos/__init__.py": "",
            "protos/reaction_pb2.py": "import harness\n",
            "protos/reaction_pb2_grpc.py": "import harness\n",
            "dashboards/__init__.py": "",
            "dashboards/generated/panels.py": "import harness\n",
            "harness/__init__.py": "import protos\n",
            "tests/__init__.py": "",
            "tests/test_x.py": "import harness\n",
            "notes/readme.py": "import harness\n",  # no __init__.py: not a package
        },
    )
    graph = build_graph(root)
    assert graph == {"facts": set(), "protos": set(), "dashboards": set(), "harness": {"protos"}}
    assert check(graph) == []
