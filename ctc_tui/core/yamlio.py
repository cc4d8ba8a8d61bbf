"""Safe YAML reading that remembers where every key came from.

Presets are hand-edited, so errors must point at a line. This module composes the YAML node graph
(safe tags only), records the line of every mapping key by its dotted path, and guards against the
things a hostile or broken file can do: binary content, huge files, and alias "billion laughs" bombs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # a preset is a few KB; refuse anything over 1 MiB
MAX_NODES = 20_000  # nodes after alias expansion
MAX_DEPTH = 64  # nested collections; a preset needs 4 (PyYAML's parser recurses: ~500 overflow the stack)


class YamlError(Exception):
    """The text is not a usable YAML document."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass
class YamlDocument:
    data: Any
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)

    def line_of(self, path: tuple[str, ...]) -> int | None:
        """Line of the deepest known key on ``path`` (1-based)."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def _expanded_size(node: yaml.Node, memo: dict[int, int], depth: int = 0) -> int:
    """Number of nodes the document would have with every alias expanded (memoised per node)."""
    if depth > 100:
        raise YamlError("nesting is too deep (more than 100 levels)", node.start_mark.line + 1)
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_NODES + 1  # a cycle counts as too big
    total = 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, memo, depth + 1) + _expanded_size(v, memo, depth + 1)
            if total > MAX_NODES:
                break
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_size(item, memo, depth + 1)
            if total > MAX_NODES:
                break
    memo[key] = total
    return total


def _record_lines(node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                sub = path + (str(key_node.value),)
                lines.setdefault(sub, key_node.start_mark.line + 1)
                _record_lines(value_node, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            sub = path + (str(index),)
            lines.setdefault(sub, item.start_mark.line + 1)
            _record_lines(item, sub, lines)


def _decode(raw: bytes) -> str:
    if len(raw) > MAX_BYTES:
        raise YamlError(f"file is {len(raw)} bytes; a preset must be under {MAX_BYTES} bytes")
    if b"\x00" in raw:
        raise YamlError("this is a binary file, not a YAML preset")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YamlError(f"not UTF-8 text (byte {exc.start}): save the preset as UTF-8") from None


_OPENS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSES = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _check_depth(text: str) -> None:
    """Raise YamlError at the first collection nested deeper than MAX_DEPTH (the scanner is iterative:
    one pass over the tokens, no stack)."""
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, _OPENS):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlError(
                    f"values nested more than {MAX_DEPTH} levels deep; a preset needs a few",
                    token.start_mark.line + 1,
                )
        elif isinstance(token, _CLOSES):
            depth -= 1


def load_yaml_text(raw: bytes | str) -> YamlDocument:
    """Parse one YAML document safely; raise YamlError with a line number on any problem."""
    text = _decode(raw) if isinstance(raw, bytes) else raw
    try:
        return _load(text)
    except RecursionError:  # PyYAML's parser recurses per nesting level: say where, in one more pass
        _check_depth(text)
        raise YamlError("values nested too deeply; a preset needs a few levels") from None


def _load(text: str) -> YamlDocument:
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        raise YamlError(f"not valid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML: {exc}") from None
    if not nodes:
        return YamlDocument(data=None)
    if len(nodes) > 1:
        raise YamlError(
            "the file holds several YAML documents (---); a preset is one", nodes[1].start_mark.line + 1
        )
    root = nodes[0]
    if _expanded_size(root, {}) > MAX_NODES:
        raise YamlError(
            "the document expands to too many values (alias/anchor bomb?)", root.start_mark.line + 1
        )
    try:
        loader = yaml.SafeLoader("")
        data = loader.construct_document(root)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise YamlError(f"not valid YAML: {exc.problem}", mark.line + 1 if mark else None) from None
    except (TypeError, ValueError) as exc:  # e.g. unhashable key such as a list used as a mapping key
        raise YamlError(f"not valid YAML: {exc}", root.start_mark.line + 1) from None
    lines: dict[tuple[str, ...], int] = {}
    _record_lines(root, (), lines)
    return YamlDocument(data=data, lines=lines)


def parse_scalar(text: str) -> Any:
    """Read a command-line override value the way YAML would (``60`` -> 60, ``[a, b]`` -> list)."""
    if text == "":
        return ""
    try:
        doc = load_yaml_text(text)
    except YamlError as exc:
        raise YamlError(str(exc).replace("not valid YAML: ", "")) from None
    return doc.data
