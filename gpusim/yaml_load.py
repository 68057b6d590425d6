"""Reading a user's YAML file safely: UTF-8 only, bounded in size and depth, no duplicate keys.

PyYAML's SafeLoader builds no Python objects, but on its own it lets the last of two equal keys win
silently, recurses once per nesting level (a deeply nested file raises RecursionError) and reads
any byte string it is given. `load_yaml` turns each of these into one SpecError line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from gpusim.errors import SpecError

MAX_BYTES = 1 << 20  # a spec file is a few KB; anything past 1 MiB is not one
MAX_DEPTH = 32  # spec files nest three levels (sm_limits, sources, peak_tflops)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping holding the same key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: SafeLoader reports it itself
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _too_deep(text: str) -> bool:
    """Whether collections in text nest deeper than MAX_DEPTH, from the event stream (no recursion);
    stops at the first level too deep (PyYAML's scanner slows down with every open flow level)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return False


def load_yaml(path: Path) -> object:
    """The document in the YAML file at path; SpecError (one line) for anything unreadable or hostile."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the file ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(f"{path}: larger than {MAX_BYTES // 1024} KiB; not a spec file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    try:
        if _too_deep(text):
            raise SpecError(f"{path}: nested more than {MAX_DEPTH} levels deep; not a spec file")
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise SpecError(f"{path}:{where} is not valid YAML ({problem})") from None
