"""YAML loading that remembers line numbers, so a bad rule is reported as `file:line: ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class LineStr(str):
    """A string from a YAML file, with the (1-based) line it starts on."""

    line: int


class LineDict(dict[str, Any]):
    """A mapping from a YAML file, with the (1-based) line it starts on."""

    line: int


class LineList(list[Any]):
    """A sequence from a YAML file, with the (1-based) line it starts on."""

    line: int


class _Loader(yaml.SafeLoader):
    pass


def _str(loader: _Loader, node: yaml.ScalarNode) -> LineStr:
    s = LineStr(loader.construct_scalar(node))
    s.line = node.start_mark.line + 1
    return s


def _map(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    pairs = loader.construct_mapping(node, deep=True).items()
    d = LineDict({(k if isinstance(k, str) else str(k)): v for k, v in pairs})  # keep LineStr keys' lines
    d.line = node.start_mark.line + 1
    return d


def _seq(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    items = LineList(loader.construct_sequence(node, deep=True))
    items.line = node.start_mark.line + 1
    return items


_Loader.add_constructor("tag:yaml.org,2002:str", _str)
_Loader.add_constructor("tag:yaml.org,2002:seq", _seq)
_Loader.add_constructor("tag:yaml.org,2002:map", _map)


def line_of(value: object, default: int = 1) -> int:
    return int(getattr(value, "line", default))


def load(path: Path) -> Any:
    """Parse `path`; raises ValueError naming the file and line for a read or YAML syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text: {e}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 1
        raise ValueError(f"{path}:{line}: not valid YAML: {e.problem}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None


def load_model(path: Path, model: type[M]) -> M:
    """A YAML file validated by a pydantic model; ValueError naming the file and every offending field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text: {e}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = [f"field '{'.'.join(map(str, err['loc'])) or '(top)'}': {err['msg']}" for err in e.errors()]
        raise ValueError(f"{path}: {'; '.join(problems)}") from None
