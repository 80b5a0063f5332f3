"""`fjmig diff` as Markdown: the review comment a pull request shows (GitHub and GitLab flavours).

The first line is the one-line summary; sections follow in a fixed order and every list is
sorted, so the same change always gives the same comment (an updated comment shows only real
changes). Sections longer than FOLD_ROWS rows are folded into `<details>`.
"""

from __future__ import annotations

import json
from typing import Any

from .diff import EntityChange, FindingKey, PlanDiff

FOLD_ROWS = 15
MAX_GRAPH_NODES = 60
MARKER = "<!-- fjmig-diff -->"
"""Hidden marker the CI examples look for to update their one comment instead of adding more."""


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _days(days: float) -> str:
    if abs(days) < 1:
        hours = days * 24
        return f"{hours:+.1f} h"
    return f"{days:+.1f} d"


def summary_line(diff: PlanDiff) -> str:
    """`+2 systems, ~3 changed, 1 new dependency, critical path +2.0 d, 1 new error`."""
    if diff.empty:
        return f"No change to the migration plans between {diff.base} and {diff.head}."
    parts = []
    for kind, word in (("department", "department"), ("system", "system"), ("network", "private network"),
                       ("milestone", "milestone")):
        added, removed = diff.count(kind, "added"), diff.count(kind, "removed")  # type: ignore[arg-type]
        if added:
            parts.append("+" + _plural(added, word))
        if removed:
            parts.append("-" + _plural(removed, word))
    changed = sum(1 for e in diff.entities if e.change == "changed")
    if changed:
        parts.append(f"~{changed} changed")
    if diff.edges_added:
        parts.append(f"{len(diff.edges_added)} new {'dependency' if len(diff.edges_added) == 1 else 'dependencies'}")
    if diff.edges_removed:
        parts.append(f"{_plural(len(diff.edges_removed), 'dependency', 'dependencies')} removed")
    if diff.waves_moved:
        parts.append(f"{_plural(len(diff.waves_moved), 'step')} change wave")
    delta = diff.critical_delta_days
    if delta is not None and abs(delta) * 24 * 60 >= 1:
        parts.append(f"critical path {_days(delta)}")
    elif diff.critical_before and diff.critical_after and diff.critical_before.steps != diff.critical_after.steps:
        parts.append("critical path rerouted")
    errors, warnings = len(diff.new_findings("error")), len(diff.new_findings("warning"))
    if errors:
        parts.append(f"{errors} new {'error' if errors == 1 else 'errors'}")
    if warnings:
        parts.append(f"{warnings} new {'warning' if warnings == 1 else 'warnings'}")
    if diff.findings_fixed:
        parts.append(f"{_plural(len(diff.findings_fixed), 'finding')} fixed")
    return ", ".join(parts) if parts else "schedule-only change"


def _cell(value: Any) -> str:
    """A value in a table cell: code-formatted, pipes and newlines escaped."""
    if value is None:
        return "—"
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict | bool) else str(value)
    text = text.replace("|", "\\|").replace("\n", " ").replace("`", "'")
    return f"`{text}`"


def _fold(title: str, lines: list[str], rows: int) -> list[str]:
    """A section, folded when it has more than FOLD_ROWS rows."""
    if rows <= FOLD_ROWS:
        return [f"### {title}", "", *lines, ""]
    return ["<details>", f"<summary><b>{title}</b> ({rows} rows)</summary>", "", *lines, "", "</details>", ""]


_TITLES = {"department": "Departments", "system": "Systems", "network": "Private networks",
           "milestone": "Milestones (infra.yaml)"}
_SIGN = {"added": "➕ added", "removed": "➖ removed", "changed": "✏️ changed"}


def _entity_section(kind: str, changes: list[EntityChange]) -> list[str]:
    lines = []
    rows = 0
    for change in changes:
        head = f"**`{change.id}`** — {_SIGN[change.change]}"
        if change.note:
            head += f" ({change.note})"
        lines += [head, ""]
        rows += 1
        if change.change == "removed":
            continue
        if change.change == "added":
            lines += ["| field | value |", "| --- | --- |"]
            lines += [f"| {f.field} | {_cell(f.after)} |" for f in change.fields]
        else:
            lines += ["| field | before | after |", "| --- | --- | --- |"]
            lines += [f"| {f.field} | {_cell(f.before)} | {_cell(f.after)} |" for f in change.fields]
        rows += len(change.fields)
        lines.append("")
    return _fold(f"{_TITLES[kind]} ({len(changes)})", lines, rows)


def _finding_lines(keys: list[FindingKey]) -> list[str]:
    icon = {"error": "❌", "warning": "⚠️"}
    return [f"- {icon.get(k.severity, '')} `{k.format()}`" for k in keys]


def _node_id(name: str, ids: dict[str, str]) -> str:
    return ids.setdefault(name, f"n{len(ids)}")


def _label(name: str) -> str:
    return name.replace('"', "#quot;")


def mermaid_graph(diff: PlanDiff) -> list[str]:
    """The changed part of the dependency graph with its direct neighbours, as a Mermaid flowchart.

    Arrows go from a dependency to the system that waits for it; added edges are thick, removed
    ones dotted; added, removed and changed systems are coloured.
    """
    status = {e.id: e.change for e in diff.entities if e.kind in ("system", "milestone")}
    touched = set(status)
    for a, b in (*diff.edges_added, *diff.edges_removed):
        touched.update((a, b))
    if not touched:
        return []
    nodes = set(touched)
    for a, b in diff.head_edges:
        if a in touched or b in touched:
            nodes.update((a, b))
    if len(nodes) > MAX_GRAPH_NODES:
        nodes = touched
    if len(nodes) > MAX_GRAPH_NODES:
        return [f"_The changed part of the graph has {len(nodes)} nodes; too many to draw._", ""]
    ids: dict[str, str] = {}
    lines = ["```mermaid", "flowchart LR"]
    for name in sorted(nodes):
        node = _node_id(name, ids)
        shape = f'{node}{{{{"{_label(name)}"}}}}' if name.startswith("infra:") else f'{node}["{_label(name)}"]'
        lines.append(f"    {shape}")
    added, removed = set(diff.edges_added), set(diff.edges_removed)
    kept = [e for e in diff.head_edges if e[0] in nodes and e[1] in nodes and e not in added]
    link = 0
    link_styles = []
    for dependent, dependency in sorted(kept):
        lines.append(f"    {ids[dependency]} --> {ids[dependent]}")
        link += 1
    for dependent, dependency in sorted(added):
        lines.append(f"    {ids[dependency]} ==>|new| {ids[dependent]}")
        link_styles.append(f"    linkStyle {link} stroke:#1a7f37,stroke-width:3px")
        link += 1
    for dependent, dependency in sorted(removed):
        lines.append(f"    {ids[dependency]} -.->|removed| {ids[dependent]}")
        link_styles.append(f"    linkStyle {link} stroke:#cf222e")
        link += 1
    lines += link_styles
    lines += ["    classDef added fill:#dafbe1,stroke:#1a7f37",
              "    classDef removed fill:#ffebe9,stroke:#cf222e,stroke-dasharray:4",
              "    classDef changed fill:#fff8c5,stroke:#9a6700"]
    for change in ("added", "removed", "changed"):
        members = sorted(ids[n] for n, c in status.items() if c == change and n in ids)
        if members:
            lines.append(f"    class {','.join(members)} {change}")
    lines += ["```", ""]
    return lines


def _slack(days: float | None) -> str:
    return "—" if days is None else f"{days:.1f} d"


def render_markdown(diff: PlanDiff) -> str:
    """The review comment; its first line is the summary."""
    lines = [summary_line(diff), "", MARKER, ""]
    if diff.empty:
        return "\n".join(lines).rstrip() + "\n"
    lines += [f"Plans compared: **{diff.base}** → **{diff.head}**.", ""]

    if diff.findings_new or diff.findings_fixed:
        lines += ["## Policy findings", ""]
        if diff.findings_new:
            lines += _fold(f"Introduced ({len(diff.findings_new)})", _finding_lines(diff.findings_new),
                           len(diff.findings_new))
        if diff.findings_fixed:
            lines += _fold(f"Fixed ({len(diff.findings_fixed)})", _finding_lines(diff.findings_fixed),
                           len(diff.findings_fixed))

    if diff.entities:
        lines += ["## Plans", ""]
        for kind in ("department", "system", "network", "milestone"):
            changes = [e for e in diff.entities if e.kind == kind]
            if changes:
                lines += _entity_section(kind, changes)

    if diff.edges_added or diff.edges_removed:
        rows = [f"| ➕ | `{a}` | `{b}` |" for a, b in diff.edges_added]
        rows += [f"| ➖ | `{a}` | `{b}` |" for a, b in diff.edges_removed]
        lines += ["## Dependencies", ""]
        lines += _fold(f"Edges added and removed ({len(rows)})",
                       ["| | system | depends on |", "| --- | --- | --- |", *rows], len(rows))

    graph = mermaid_graph(diff)
    if graph:
        lines += ["## Changed part of the dependency graph", "",
                  "Arrows point from a dependency to the system that waits for it; thick: new, dotted: removed.",
                  "", *graph]

    lines += _schedule_lines(diff)
    return "\n".join(lines).rstrip() + "\n"


def _schedule_lines(diff: PlanDiff) -> list[str]:
    lines: list[str] = []
    before, after = diff.critical_before, diff.critical_after
    delta = diff.critical_delta_days
    path_changed = bool(before and after and before.steps != after.steps)
    if not (diff.waves_moved or diff.deadlines or path_changed or diff.steps_added or diff.steps_removed
            or (delta and abs(delta) * 1440 >= 1)
            or (before is None) != (after is None)):
        return lines
    lines += ["## Schedule", ""]
    if before is None or after is None:
        missing = diff.base if before is None else diff.head
        lines += [f"No schedule for {missing} (a dependency cycle or no loadable plans): see the findings.", ""]
    else:
        same = before.steps == after.steps
        lines += ["| | before | after |", "| --- | --- | --- |",
                  f"| finish (+08:00) | {_when(before.finish)} | {_when(after.finish)} |",
                  f"| makespan | {before.makespan_days:.1f} d | {after.makespan_days:.1f} d |",
                  f"| critical path | {_path(before.steps)} | {'unchanged' if same else _path(after.steps)} |", ""]
    if diff.deadlines:
        rows = [f"| `{d.department}` | {d.deadline} | {_slack(d.before_days)} | {_slack(d.after_days)} "
                f"| {'⚠️ late' if d.after_days is not None and d.after_days < 0 else ''} |" for d in diff.deadlines]
        lines += _fold(f"Slack to deadlines ({len(rows)} affected)",
                       ["Smallest slack of the department's steps against each deadline (end of day, +08:00).", "",
                        "| department | deadline | slack before | slack after | |",
                        "| --- | --- | --- | --- | --- |", *rows], len(rows))
    if diff.steps_added or diff.steps_removed:
        rows = [f"| ➕ | `{step}` |" for step in diff.steps_added]
        rows += [f"| ➖ | `{step}` |" for step in diff.steps_removed]
        lines += _fold(f"Steps added and removed ({len(rows)})", ["| | step |", "| --- | --- |", *rows], len(rows))
    if diff.waves_moved:
        rows = [f"| `{m.step}` | {m.before} | {m.after} |" for m in diff.waves_moved]
        lines += _fold(f"Steps whose wave moved ({len(rows)})",
                       ["| step | wave before | wave after |", "| --- | --- | --- |", *rows], len(rows))
    return lines


def _when(iso: str | None) -> str:
    return iso[:16].replace("T", " ") if iso else "—"


def _path(steps: list[str]) -> str:
    return " → ".join(f"`{s}`" for s in steps) if steps else "—"


def render_json(diff: PlanDiff) -> str:
    data = diff.to_dict()
    data["summary"] = summary_line(diff)
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
