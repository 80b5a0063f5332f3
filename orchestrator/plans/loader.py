"""Loading a plans directory: safe YAML, the pydantic model, and line numbers on demand.

Every consumer (validator, scheduler, executor, Pulumi programs, reports) loads plans here.
The fast path parses with libyaml's safe loader and validates with pydantic; the YAML node tree
that maps a finding back to a line is composed only for files that have something to report.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import FjmigError
from .findings import Finding, YamlPath
from .model import ID_PATTERN, DepartmentPlan, InfraPlan, Milestone, System

try:  # libyaml is much faster; the pure-Python loader is the same safe subset.
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader  # type: ignore[assignment]

_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ, _MERGE = _TAG + "str", _TAG + "map", _TAG + "seq", _TAG + "merge"
_PLAIN_SCALARS = frozenset(_TAG + name for name in ("null", "bool", "int", "float", "timestamp"))


class _Fallback(Exception):
    """The document needs the general constructor (merge keys, recursion, unusual tags)."""


class PlanLoader(SafeLoader):  # type: ignore[misc,valid-type]
    """The safe loader, faster for plans and strict about duplicate keys.

    Builds the same Python data as `SafeLoader` from the composed nodes, but in one direct pass
    with the implicit-tag resolution cached (a plan repeats the same scalars thousands of times),
    and records every mapping key that appears twice (`duplicate_keys`: (key, line, first line)),
    which PyYAML would silently resolve to the last value. Documents with merge keys, recursive
    aliases or tags other than the core schema's go through the general safe constructor."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._resolved: dict[tuple[Any, ...], str] = {}
        self.duplicate_keys: list[tuple[Any, int, int]] = []

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        key = (kind, value, implicit)
        try:
            return self._resolved[key]
        except KeyError:
            tag = self._resolved[key] = super().resolve(kind, value, implicit)
            return tag
        except TypeError:  # unhashable arguments: never the case for libyaml, but be safe
            return super().resolve(kind, value, implicit)

    def construct_document(self, node: yaml.Node) -> Any:
        memo: dict[int, Any] = {}
        busy: set[int] = set()
        scalar_constructors = self.yaml_constructors
        duplicates: list[tuple[Any, int, int]] = []

        def build(current: yaml.Node) -> Any:
            tag = current.tag
            if tag == _STR and type(current) is yaml.ScalarNode:
                return current.value
            key = id(current)
            if key in memo:
                return memo[key]
            if key in busy:
                raise _Fallback
            kind = type(current)
            if kind is yaml.ScalarNode:
                if tag not in _PLAIN_SCALARS:
                    raise _Fallback
                out = scalar_constructors[tag](self, current)
            elif kind is yaml.MappingNode and tag == _MAP:
                busy.add(key)
                out = {}
                for key_node, value_node in current.value:
                    if key_node.tag == _MERGE:
                        raise _Fallback
                    name = build(key_node)
                    try:
                        seen = name in out
                    except TypeError:
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", current.start_mark,
                            "found unhashable key", key_node.start_mark) from None
                    if seen:
                        first = next(k for k, _ in current.value if build(k) == name)
                        duplicates.append((name, key_node.start_mark.line + 1, first.start_mark.line + 1))
                    out[name] = build(value_node)
                busy.discard(key)
            elif kind is yaml.SequenceNode and tag == _SEQ:
                busy.add(key)
                out = [build(child) for child in current.value]
                busy.discard(key)
            else:
                raise _Fallback
            memo[key] = out
            return out

        try:
            data = build(node)
        except _Fallback:
            self.duplicate_keys = []
            return super().construct_document(node)
        self.duplicate_keys = duplicates
        return data


def _load_yaml(text: str) -> tuple[Any, list[tuple[Any, int, int]]]:
    """Parse one document safely: (data, duplicate keys)."""
    loader = PlanLoader(text)
    try:
        return loader.get_single_data(), loader.duplicate_keys
    finally:
        loader.dispose()

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_EXPANDED_NODES = 200_000
INFRA_FILE_NAMES = ("infra.yaml", "infra.yml")
_ALIAS = re.compile(r"(?<![\w\"'])\*[^\s,\[\]{}]+")


class PlansDirectoryError(FjmigError):
    """The plans directory itself is unusable (a usage error, exit status 2)."""


@dataclass
class PlanFile:
    """One YAML file as read from disk, with lazy line lookup."""

    path: Path
    display: str
    text: str = ""

    @cached_property
    def _root(self) -> yaml.Node | None:
        try:
            return yaml.compose(self.text, Loader=SafeLoader)
        except yaml.YAMLError:
            return None

    def line_of(self, ypath: YamlPath) -> int:
        """Line (1-based) of the deepest node along `ypath` that exists."""
        node = self._root
        if node is None:
            return 1
        line = node.start_mark.line + 1
        for key in ypath:
            child = _child(node, key)
            if child is None:
                break
            node, line = child
        return line


def _child(node: yaml.Node, key: str | int) -> tuple[yaml.Node, int] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in reversed(node.value):  # the last of duplicate keys is the one in effect
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
                # Point at the key (`host: x`, `department:`): for a block collection the value
                # only starts on the next line, which is not where the reader looks.
                return value_node, key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        item = node.value[key]
        return item, item.start_mark.line + 1
    return None


@dataclass
class PlanSet:
    """A loaded plans directory: the valid models plus what could not be loaded."""

    root: Path
    departments: dict[str, DepartmentPlan] = field(default_factory=dict)
    files: dict[str, PlanFile] = field(default_factory=dict)
    """department id -> the file it came from"""
    infra: InfraPlan | None = None
    infra_file: PlanFile | None = None
    findings: list[Finding] = field(default_factory=list)
    by_display: dict[str, PlanFile] = field(default_factory=dict)

    @cached_property
    def systems(self) -> dict[str, tuple[DepartmentPlan, System]]:
        """Global id `<dept>/<system>` -> (department, system); first one wins on duplicates."""
        out: dict[str, tuple[DepartmentPlan, System]] = {}
        for plan in self.departments.values():
            for system in plan.systems:
                out.setdefault(f"{plan.id}/{system.id}", (plan, system))
        return out

    @cached_property
    def milestones(self) -> dict[str, Milestone]:
        return {m.id: m for m in self.infra.milestones} if self.infra else {}

    def file_of(self, dept_id: str) -> str:
        return self.files[dept_id].display

    def resolve_lines(self, findings: Iterable[Finding]) -> list[Finding]:
        """Fill in `line` for findings that have a YAML path (composes nodes only here)."""
        out = []
        for finding in findings:
            if finding.line is None:
                source = self.by_display.get(finding.file)
                finding.line = source.line_of(finding.path) if source else 1
            out.append(finding)
        return out


def plan_files(root: Path) -> Iterator[Path]:
    """Department files and infra.yaml: `*.yaml`/`*.yml` directly in `root`, no hidden files."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise PlansDirectoryError(f"{root}: cannot list the plans directory: {exc.strerror or exc}") from None
    for entry in entries:
        if entry.name.startswith(".") or not entry.name.endswith((".yaml", ".yml")):
            continue
        yield Path(entry.path)


def load_plans(root: str | Path) -> PlanSet:
    """Load every plan in `root`. Never raises for bad content; problems become findings."""
    display_root = str(root)
    root_path = Path(root)
    try:
        is_directory = stat.S_ISDIR(root_path.stat().st_mode)
    except FileNotFoundError:
        is_directory = False
    except OSError as exc:
        raise PlansDirectoryError(f"{display_root}: cannot reach the plans directory: {exc.strerror or exc}") from None
    if not is_directory:
        raise PlansDirectoryError(f"{display_root}: no such plans directory")
    plans = PlanSet(root=root_path)
    seen_files = 0
    department_files = 0
    for path in plan_files(root_path):
        seen_files += 1
        department_files += path.name not in INFRA_FILE_NAMES
        display = os.path.join(display_root, path.name)
        source = PlanFile(path=path, display=display)
        plans.by_display[display] = source
        data = _read(source, plans.findings)
        if data is _UNREADABLE:
            continue
        if path.name in INFRA_FILE_NAMES:
            infra = _validate(InfraPlan, data, source, plans.findings)
            if infra is not None and plans.infra_file is not None:
                plans.findings.append(Finding(display, "duplicate-id", f"{plans.infra_file.display} also "
                                              "defines the milestones: keep one infra file", line=1))
            elif infra is not None:
                plans.infra, plans.infra_file = infra, source
            continue
        stem = path.name.rsplit(".", 1)[0]
        plan = _validate(DepartmentPlan, data, source, plans.findings)
        if plan is None:
            continue
        if plan.id != stem:
            plans.findings.append(
                Finding(display, "schema", f"department.id {plan.id!r} differs from the file name "
                        f"{path.name!r}: name the file {plan.id}.yaml", path=("department", "id"))
            )
            continue
        if plan.id in plans.departments:
            first = plans.files[plan.id].display
            plans.findings.append(
                Finding(display, "duplicate-id", f"department {plan.id!r} is also defined in {first}",
                        path=("department", "id"))
            )
            continue
        plans.departments[plan.id] = plan
        plans.files[plan.id] = source
    if seen_files == 0:
        plans.findings.append(
            Finding(display_root, "schema", f"no plan files (*.yaml) in {display_root}", line=1)
        )
    elif department_files == 0:
        plans.findings.append(
            Finding(display_root, "schema", f"no department plans in {display_root}, only infra.yaml", line=1)
        )
    return plans


_UNREADABLE = object()


def _read(source: PlanFile, findings: list[Finding]) -> Any:
    """Read and parse one file safely; on any problem add a finding and return _UNREADABLE."""

    def fail(message: str, line: int = 1) -> Any:
        findings.append(Finding(source.display, "schema", message, line=line))
        return _UNREADABLE

    try:
        size = source.path.stat().st_size
        if not source.path.is_file():
            return fail("not a regular file")
        if size > MAX_FILE_BYTES:
            return fail(f"file is {size / 1e6:.1f} MB; a plan may be at most {MAX_FILE_BYTES // 2**20} MiB")
        raw = source.path.read_bytes()
    except OSError as exc:
        return fail(f"cannot read: {exc.strerror or exc}")
    try:
        source.text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return fail(f"not UTF-8 text (byte {exc.start}); plans are UTF-8 YAML")
    if "\x00" in source.text:
        return fail("contains NUL bytes; plans are UTF-8 YAML text")
    try:
        data, duplicates = _load_yaml(source.text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return fail(f"YAML does not parse: {exc.problem or exc}", (mark.line + 1) if mark else 1)
    except RecursionError:
        return fail("YAML does not parse: nested too deeply")
    except (yaml.YAMLError, ValueError) as exc:
        return fail(f"YAML does not parse: {exc}")
    if "*" in source.text and _ALIAS.search(source.text) and _expanded_size(source) > MAX_EXPANDED_NODES:
        return fail(f"YAML aliases expand to more than {MAX_EXPANDED_NODES} nodes")
    for key, line, first in duplicates:
        findings.append(Finding(source.display, "schema", f"duplicate key {key!r} (first on line {first}): "
                                "YAML would keep only the last value; remove one", line=line))
    if data is None:
        return fail("file is empty: a plan starts with `version: 1`")
    if not isinstance(data, dict):
        return fail(f"the top level must be a mapping (version, department, ...), not a {_yaml_type(data)}")
    return data


def _expanded_size(source: PlanFile) -> int:
    """Node count with aliases expanded (guards pydantic against 'billion laughs' input)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int = 0) -> int:
        if depth > 200:
            return MAX_EXPANDED_NODES + 1
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = MAX_EXPANDED_NODES + 1  # a cycle counts as too large
        if isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        else:
            total = 1
        sizes[id(node)] = total
        return total

    root = source._root
    return size(root) if root is not None else 0


def _yaml_type(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _validate(model: type[Any], data: Any, source: PlanFile, findings: list[Finding]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            findings.append(
                Finding(source.display, "schema", _schema_message(loc, error), path=_yaml_loc(loc))
            )
        return None
    except RecursionError:
        findings.append(Finding(source.display, "schema", "invalid plan: nested too deeply", line=1))
        return None
    except (ValueError, TypeError, ArithmeticError) as exc:
        findings.append(Finding(source.display, "schema", f"invalid plan: {exc}", line=1))
        return None


def _yaml_loc(loc: tuple[Any, ...]) -> YamlPath:
    """Pydantic locations may contain validator tags (`function-after[...]`); keep real keys."""
    return tuple(p for p in loc if isinstance(p, int) or not ("[" in str(p) or "(" in str(p)))


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in _yaml_loc(loc):
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "document"


def _schema_message(loc: tuple[Any, ...], error: dict[str, Any]) -> str:
    where = _dotted(loc)
    kind = error["type"]
    if kind == "missing":
        return f"{where}: required field is missing"
    if kind == "extra_forbidden":
        return f"{where}: unknown field (check the spelling against docs/PLAN_FORMAT.md)"
    message = error["msg"].removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == ID_PATTERN:
        return (f"{where}: {error['input']!r} is not a valid id (lower-case letters, digits and '-', "
                "2-41 characters, starting with a letter)")
    if kind == "string_pattern_mismatch" and where.endswith("data.path"):
        return f"{where}: {error['input']!r} must be an absolute path of letters, digits, '.', '_', '-'"
    if kind == "literal_error" and where == "version":
        return f"version: only version 1 exists (got {error['input']!r})"
    return f"{where}: {message}"
