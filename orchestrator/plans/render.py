"""Rendering a schedule: text, json, markdown, mermaid (Gantt) and dot."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from .schedule import Schedule, Timing

FORMATS = ("text", "json", "markdown", "mermaid", "dot")


def _hours(seconds: float) -> str:
    if seconds == float("inf"):
        return "∞"
    if abs(seconds) < 3600:
        return f"{seconds / 60:.0f}m"
    if abs(seconds) < 72 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _when(sched: Schedule, seconds: float) -> str:
    """`YYYY-MM-DD HH:MM` at +08:00 (isoformat is several times faster than strftime)."""
    return sched.at(seconds).isoformat(" ", "minutes")[:16]


def _ordered(sched: Schedule) -> list[Timing]:
    return sorted(sched.timings.values(), key=lambda t: (t.wave, t.start, t.step.id))


def _flags(sched: Schedule, timing: Timing) -> list[str]:
    flags = []
    if timing.critical:
        flags.append("critical")
    if timing.step.approval:
        flags.append("approval")
    if timing.window_problem:
        flags.append(f"window: {timing.window_problem}")
    if sched.is_late(timing):
        flags.append("late")
    return flags


def summary(sched: Schedule) -> dict[str, object]:
    late = len(sched.deadline_misses())
    return {
        "start": sched.origin.isoformat(),
        "finish": sched.at(sched.makespan).isoformat(),
        "makespan_hours": round(sched.makespan / 3600, 3),
        "steps": sum(1 for t in sched.timings.values() if t.step.kind != "milestone"),
        "waves": len(sched.waves),
        "critical_path": sched.critical_path,
        "late_steps": late,
        "bandwidth_gbit": sched.model.bandwidth_gbit,
        "parallel": sched.model.parallel,
    }


TEXT_COLUMNS = ("step", "start (+08:00)", "finish", "takes", "slack", "deadline", "notes")


def _text_table(title: str, rows: list[tuple[str, ...]]) -> list[str]:
    """A plain fixed-width table: fast for tens of thousands of rows, greppable, no colour."""
    widths = [max(len(TEXT_COLUMNS[i]), *(len(row[i]) for row in rows)) for i in range(len(TEXT_COLUMNS) - 1)]
    pattern = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    lines = [title, pattern.format(*TEXT_COLUMNS).rstrip(), "  ".join("-" * w for w in [*widths, 5])]
    lines.extend(pattern.format(*row).rstrip() for row in rows)
    lines.append("")
    return lines


def render_text(sched: Schedule) -> str:
    by_wave: dict[int, list[tuple[str, ...]]] = {}
    for t in _ordered(sched):
        by_wave.setdefault(t.wave, []).append((
            t.step.id,
            _when(sched, t.start),
            _when(sched, t.finish),
            _hours(t.duration),
            _hours(t.slack),
            t.step.deadline.isoformat() if t.step.deadline else "",
            ", ".join(_flags(sched, t)),
        ))
    lines: list[str] = []
    for wave, rows in by_wave.items():
        lines += _text_table(f"Wave {wave}", rows)
    info = summary(sched)
    lines.append(
        f"{info['steps']} steps in {info['waves']} waves; finish {_when(sched, sched.makespan)} "
        f"(+08:00) after {_hours(sched.makespan)}; {info['late_steps']} steps late; "
        f"bandwidth {sched.model.bandwidth_gbit:g} Gbit/s, {sched.model.parallel} transfers at once"
    )
    lines.append("critical path: " + " -> ".join(sched.critical_path))
    return "\n".join(lines) + "\n"


def to_json_data(sched: Schedule) -> dict[str, object]:
    steps = []
    for t in _ordered(sched):
        step = t.step
        steps.append({
            "id": step.id,
            "kind": step.kind,
            "department": step.dept,
            "subject": step.subject,
            "wave": t.wave,
            "start": sched.at(t.start).isoformat(),
            "finish": sched.at(t.finish).isoformat(),
            "duration_hours": round(t.duration / 3600, 4),
            "slack_hours": round(t.slack / 3600, 4) if t.slack != float("inf") else None,
            "deadline": step.deadline.isoformat() if step.deadline else None,
            "late": sched.is_late(t),
            "critical": t.critical,
            "approval": step.approval,
            "window": [w.isoformat() for w in step.window] if step.window else None,
            "window_problem": t.window_problem,
            "depends_on": sorted(sched.graph.graph.predecessors(step.id)),
        })
    return {"summary": summary(sched), "steps": steps}


def render_json(sched: Schedule) -> str:
    """The summary indented, then one step per line: json's C encoder only runs without
    `indent`, and a line per step keeps the output diffable and greppable."""
    data = to_json_data(sched)
    summary_text = json.dumps(data["summary"], ensure_ascii=False, indent=2).replace("\n", "\n  ")
    steps = ",\n    ".join(json.dumps(step, ensure_ascii=False) for step in data["steps"])  # type: ignore[attr-defined]
    body = f"\n    {steps}\n  " if steps else ""
    return f'{{\n  "summary": {summary_text},\n  "steps": [{body}]\n}}\n'


def render_markdown(sched: Schedule) -> str:
    info = summary(sched)
    lines = [
        "# Migration schedule",
        "",
        f"{info['steps']} steps in {info['waves']} waves, from {_when(sched, 0)} to "
        f"{_when(sched, sched.makespan)} (+08:00); {info['late_steps']} steps late.",
        "",
        "**Critical path:** " + " → ".join(f"`{s}`" for s in sched.critical_path),
        "",
    ]
    current = None
    for t in _ordered(sched):
        if t.wave != current:
            current = t.wave
            lines += ["", f"## Wave {t.wave}", "",
                      "| step | start | finish | takes | slack | deadline | notes |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
        lines.append(
            f"| `{t.step.id}` | {_when(sched, t.start)} | {_when(sched, t.finish)} | {_hours(t.duration)} "
            f"| {_hours(t.slack)} | {t.step.deadline or ''} | {', '.join(_flags(sched, t))} |"
        )
    return "\n".join(lines) + "\n"


def _mermaid_id(step_id: str) -> str:
    """A Mermaid task id, distinct for distinct step ids ('-' -> '_', '/' -> '__', ':' -> '___'
    would not be: ids may contain '--'), so escape '_' itself and use letters for the separators."""
    return "s_" + step_id.replace("_", "_u").replace("-", "_h").replace("/", "_s").replace(":", "_c")


def render_mermaid(sched: Schedule) -> str:
    """A Gantt chart, one section per department (renders in GitHub and GitLab)."""
    lines = [
        "gantt",
        "    title Migration schedule",
        "    dateFormat YYYY-MM-DD HH:mm",
        "    axisFormat %m-%d",
    ]
    sections: dict[str, list[Timing]] = {}
    for t in sorted(sched.timings.values(), key=lambda t: (t.start, t.step.id)):
        if t.step.kind == "milestone":
            continue
        sections.setdefault(t.step.dept, []).append(t)
    for dept in sorted(sections):
        lines.append(f"    section {dept}")
        for t in sections[dept]:
            tags = []
            if t.critical:
                tags.append("crit")
            # Absolute start and end (minute resolution, at least one minute): minute durations
            # such as `56m` do not render in some Mermaid releases, dates always do.
            first_minute = int(t.start // 60)
            last_minute = max(first_minute + 1, round(t.finish / 60))
            label = f"{t.step.subject} {t.step.kind}".replace(":", " ")
            tags.append(_mermaid_id(t.step.id))
            tags.append(_when(sched, first_minute * 60))
            tags.append(_when(sched, last_minute * 60))
            lines.append(f"    {label} :{', '.join(tags)}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    """A DOT quoted string; a newline becomes DOT's `\\n` line break."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(sched: Schedule) -> str:
    lines = ["digraph migration {", "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
    for t in _ordered(sched):
        attrs = [f"label={_dot_quote(t.step.id + chr(10) + 'wave ' + str(t.wave))}"]
        if t.critical:
            attrs.append('color="red"')
        if t.step.kind == "milestone":
            attrs.append("shape=diamond")
        lines.append(f"  {_dot_quote(t.step.id)} [{', '.join(attrs)}];")
    for a, b in sorted(sched.graph.graph.edges()):
        lines.append(f"  {_dot_quote(a)} -> {_dot_quote(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[Schedule], str]] = {
    "text": render_text,
    "json": render_json,
    "markdown": render_markdown,
    "mermaid": render_mermaid,
    "dot": render_dot,
}


def render(sched: Schedule, fmt: str) -> str:
    return RENDERERS[fmt](sched)


__all__ = ["FORMATS", "datetime", "render", "summary", "to_json_data"]
