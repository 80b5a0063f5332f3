"""Findings: what validation reports, and how it prints.

A finding carries the YAML path of the offending node, not its line: line numbers are resolved
only when a finding is printed, so that the fast path (valid plans) never composes a node tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

RULES_DOC = "docs/PLAN_FORMAT.md"
"""Where each rule is explained: its section's anchor is the rule id (docs/PLAN_FORMAT.md#cycle)."""

Severity = Literal["error", "warning"]
YamlPath = tuple[str | int, ...]


@dataclass
class Finding:
    """One rule violation, located by file and YAML path."""

    file: str
    rule: str
    message: str
    severity: Severity = "error"
    path: YamlPath = ()
    line: int | None = field(default=None)

    def format(self) -> str:
        """`FILE:LINE: error[RULE]: message`, the format docs/PLAN_FORMAT.md fixes."""
        return f"{self.file}:{self.line or 1}: {self.severity}[{self.rule}]: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line or 1,
            "severity": self.severity,
            "rule": self.rule,
            "message": self.message,
            "path": [str(p) for p in self.path],
            "doc": rule_doc(self.rule),
        }


def rule_doc(rule: str) -> str:
    """The section of docs/PLAN_FORMAT.md that explains RULE."""
    return f"{RULES_DOC}#{rule}"


def sort_key(finding: Finding) -> tuple[str, int, str]:
    return (finding.file, finding.line or 1, finding.rule)
