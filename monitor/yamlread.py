"""Reading a YAML node tree so that every error names the file, the line and the key.

config.yaml is read from PyYAML's nodes, not from the objects it would build, so that a value
is checked where it stands: each method returns a checked value or raises ConfigError at the
node's line.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar, cast

import yaml

from monitor.errors import ConfigError
from monitor.names import to_alabel
from monitor.vocabulary import SLUG

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_KINDS = {
    _STR: "a string",
    _INT: "an integer",
    _FLOAT: "a number",
    _BOOL: "true/false",
    _NULL: "nothing",
    "tag:yaml.org,2002:timestamp": "a date",
}

_T = TypeVar("_T")


class NodeReader:
    """Checks the nodes of one file; ``fail`` raises ConfigError naming its line and key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = str(path)
        self.base = path.parent
        self.scalars = yaml.constructor.SafeConstructor()

    # -- errors and node types ---------------------------------------------------------

    def fail(self, message: str, node: yaml.Node | None, key: str | None) -> NoReturn:
        line = node.start_mark.line + 1 if node is not None else None
        raise ConfigError(message, file=self.file, line=line, key=key or None)

    def kind(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        return _KINDS.get(node.tag, "a tagged value")

    def expect(self, node: yaml.Node, key: str, wanted: str, tags: Sequence[str]) -> object:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in tags:
            self.fail(f"expected {wanted}, got {self.kind(node)}", node, key)
        try:
            return self.scalars.construct_object(node)
        except (ValueError, yaml.YAMLError) as e:
            # PyYAML resolves some scalars that its constructors then refuse (!!int "x").
            self.fail(f"expected {wanted}: {e}", node, key)

    def string(self, node: yaml.Node, key: str) -> str:
        value = self.expect(node, key, "a string", (_STR,))
        assert isinstance(value, str)
        if not value.strip():
            self.fail("must not be empty", node, key)
        return value

    def integer(self, node: yaml.Node, key: str, low: int, high: int | None) -> int:
        value = self.expect(node, key, "an integer", (_INT,))
        assert isinstance(value, int)
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.fail(f"must be {bounds}, got {value}", node, key)
        return value

    def number(self, node: yaml.Node, key: str) -> float:
        value = self.expect(node, key, "a number", (_INT, _FLOAT))
        assert isinstance(value, int | float)
        if not math.isfinite(value):
            self.fail(f"must be a finite number, got {node.value}", node, key)
        return float(value)

    def boolean(self, node: yaml.Node, key: str) -> bool:
        value = self.expect(node, key, "true or false", (_BOOL,))
        assert isinstance(value, bool)
        return value

    def choice(self, node: yaml.Node, key: str, choices: Sequence[_T]) -> _T:
        value = self.string(node, key)
        for choice in choices:
            if value == choice:
                return choice
        self.fail(f"must be one of {', '.join(map(str, choices))}, got {value!r}", node, key)

    def slug(self, node: yaml.Node, key: str) -> str:
        value = self.string(node, key)
        if not SLUG.fullmatch(value):
            self.fail(f"must be lowercase letters, digits and '-', got {value!r}", node, key)
        return value

    def name(self, node: yaml.Node, key: str) -> str:
        text = self.string(node, key)
        try:
            return to_alabel(text)
        except ValueError as e:
            self.fail(f"{text!r} is not a domain name: {e}", node, key)

    def address(self, node: yaml.Node, key: str) -> str:
        text = self.string(node, key)
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            self.fail(f"{text!r} is not an IPv4 or IPv6 address", node, key)

    def network(self, node: yaml.Node, key: str) -> str:
        """An address, or a range of them in CIDR notation (``10.0.34.0/24``)."""
        text = self.string(node, key)
        if "/" not in text:
            return self.address(node, key)
        try:
            return str(ipaddress.ip_network(text))
        except ValueError as e:
            self.fail(f"{text!r} is not an address or a CIDR range: {e}", node, key)

    def sequence(self, node: yaml.Node, key: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(f"expected a list, got {self.kind(node)}", node, key)
        return list(node.value)

    def set_of(
        self, top: dict[str, yaml.Node], key: str, item: Callable[[yaml.Node, str], str]
    ) -> frozenset[str]:
        """Return the items of the list at ``key`` (absent: none), each checked by *item*."""
        if key not in top:
            return frozenset()
        children = self.sequence(top[key], key)
        return frozenset(item(child, f"{key}[{i}]") for i, child in enumerate(children))

    def unique_list(
        self, node: yaml.Node, key: str, item: Callable[[yaml.Node, str], str]
    ) -> tuple[str, ...]:
        """Return the items of a non-empty list, each checked by *item*; duplicates are errors."""
        items = self.sequence(node, key)
        if not items:
            self.fail("must not be empty", node, key)
        seen: dict[str, int] = {}
        for i, child in enumerate(items):
            value = item(child, f"{key}[{i}]")
            if value in seen:
                self.fail(
                    f"{value} is listed twice (first on line {seen[value]})", child, f"{key}[{i}]"
                )
            seen[value] = child.start_mark.line + 1
        return tuple(seen)

    def mapping(
        self, node: yaml.Node, key: str, allowed: Sequence[str], what: str = "a mapping"
    ) -> dict[str, yaml.Node]:
        """Return a mapping's value nodes by key; unknown or repeated keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(f"expected {what}, got {self.kind(node)}", node, key)
        values: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                self.fail(f"a key must be a string, got {self.kind(key_node)}", key_node, key)
            name = cast(str, key_node.value)
            path = f"{key}.{name}" if key else name
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(allowed)}"
                self.fail(f"unknown key ({hint})", key_node, path)
            if name in values:
                self.fail("duplicate key", key_node, path)
            values[name] = value_node
        return values
