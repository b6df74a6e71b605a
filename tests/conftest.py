"""Shared fixtures. Tests marked `stack` run against the real native stack (one per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import provision


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests that start their own stack must run before the shared one exists (ports are fixed).
    items.sort(key=lambda item: 0 if item.get_closest_marker("own_stack") else 1)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from harness.stack import Stack

    try:
        provision.locate()
    except provision.ProvisionError as e:
        pytest.fail(f"the real stack is not provisioned: {e}")
    work: Path = tmp_path_factory.mktemp("stack")
    s = Stack(work, "async")
    s.up()
    try:
        yield s
    finally:
        s.down()
