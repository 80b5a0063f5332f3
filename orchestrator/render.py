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
    return sched.at(seconds).strftime("%Y-%m-%d %H:%M")


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
    deadline = timing.step.deadline
    if deadline and timing.step.kind != "milestone" and sched.finish_date(timing.step.id) > deadline:
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


def render_text(sched: Schedule) -> str:
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    buffer = StringIO()
    console = Console(file=buffer, width=140, no_color=True, force_terminal=False)
    by_wave: dict[int, list[Timing]] = {}
    for timing in _ordered(sched):
        by_wave.setdefault(timing.wave, []).append(timing)
    for wave, timings in by_wave.items():
        table = Table(title=f"Wave {wave}", title_justify="left", expand=False)
        for column in ("step", "start (+08:00)", "finish", "takes", "slack", "deadline", "notes"):
            table.add_column(column, no_wrap=column != "notes")
        for t in timings:
            table.add_row(
                t.step.id,
                _when(sched, t.start),
                _when(sched, t.finish),
                _hours(t.duration),
                _hours(t.slack),
                t.step.deadline.isoformat() if t.step.deadline else "",
                ", ".join(_flags(sched, t)),
            )
        console.print(table)
    info = summary(sched)
    console.print(
        f"{info['steps']} steps in {info['waves']} waves; finish {_when(sched, sched.makespan)} "
        f"(+08:00) after {_hours(sched.makespan)}; {info['late_steps']} steps late; "
        f"bandwidth {sched.model.bandwidth_gbit:g} Gbit/s, {sched.model.parallel} transfers at once"
    )
    console.print("critical path: " + " -> ".join(sched.critical_path))
    return buffer.getvalue()


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
            "late": "late" in _flags(sched, t),
            "critical": t.critical,
            "approval": step.approval,
            "window": [w.isoformat() for w in step.window] if step.window else None,
            "window_problem": t.window_problem,
            "depends_on": sorted(sched.graph.graph.predecessors(step.id)),
        })
    return {"summary": summary(sched), "steps": steps}


def render_json(sched: Schedule) -> str:
    return json.dumps(to_json_data(sched), ensure_ascii=False, indent=2) + "\n"


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
    return "s_" + "".join(c if c.isalnum() else "_" for c in step_id)


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
            minutes = max(1, round(t.duration / 60))
            label = f"{t.step.subject} {t.step.kind}".replace(":", " ")
            tags.append(_mermaid_id(t.step.id))
            tags.append(_when(sched, t.start))
            tags.append(f"{minutes}m")
            lines.append(f"    {label} :{', '.join(tags)}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


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


__all__ = ["FORMATS", "render", "summary", "to_json_data", "datetime"]
