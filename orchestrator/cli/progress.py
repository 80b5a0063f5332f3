"""Progress of a run as the user sees it: rich on a terminal, plain lines otherwise, JSON lines
with --format json; and the run's summary."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from ..execution.executor import Event, RunSummary
from .common import console


class Reporter:
    """Progress: rich on a terminal, plain lines otherwise, JSON lines with --format json."""

    def __init__(self, fmt: str, total: int = 0) -> None:
        self.fmt = fmt
        self.out = console()
        self.live = fmt == "text" and self.out.is_terminal
        self.progress: Any = None
        self.task: Any = None
        self.running: set[str] = set()
        self.done = 0
        self.bytes = 0

    def __enter__(self) -> Reporter:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=self.out, transient=False)
            self.progress.start()
            self.task = self.progress.add_task("steps", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def __call__(self, event: Event) -> None:
        if self.fmt == "json":
            record = {"event": event.kind, "step": event.step_id, "state": event.state, "message": event.message,
                      **event.data, "time": time.time()}
            sys.stdout.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            sys.stdout.flush()
            return
        if event.kind == "run-started":
            total, done = event.data["selected"], event.data["done"]
            self.done = done
            resumed = event.data.get("resumed") or []
            text = f"run {event.data['run_id']}: {total} steps selected, {done} already done"
            if resumed:
                text += f"; rerunning {len(resumed)} interrupted: {', '.join(resumed)}"
            self._line(text)
            if self.progress:
                self.progress.update(self.task, total=total, completed=done)
        elif event.kind == "step-started":
            self.running.add(event.step_id)
            attempt = event.data.get("attempt", 1)
            where = f" on {event.data['node']}" if event.data.get("node") else ""
            self._line(f"start  {event.step_id}{where}" + (f" (attempt {attempt})" if attempt > 1 else ""), dim=True)
        elif event.kind == "step-finished":
            self.running.discard(event.step_id)
            if event.state == "succeeded":
                self.done += 1
            self.bytes += int(event.data.get("bytes") or 0)
            style = {"succeeded": "green", "failed": "red"}.get(event.state or "", "yellow")
            extra = f": {event.message}" if event.message else ""
            changed = event.data.get("changed")
            if event.state == "succeeded" and changed is not None:
                extra = f" ({changed} changed)"
            self._line(f"{event.state:<10}{event.step_id}{extra}", style=style)
        elif event.kind in ("step-held", "step-blocked", "step-retry"):
            self._line(f"{event.kind.removeprefix('step-'):<10}{event.step_id}: {event.message}", style="yellow")
        elif event.kind == "run-finished":
            self._line(f"run {event.data['run_id']} {event.state}: {_size(self.bytes)} moved")
        if self.progress:
            now_running = ", ".join(sorted(self.running)[:3]) + (" …" if len(self.running) > 3 else "")
            self.progress.update(self.task, completed=self.done,
                                 description=f"{_size(self.bytes)} moved; running [{now_running}]")

    def _line(self, text: str, style: str | None = None, dim: bool = False) -> None:
        target = self.progress.console if self.progress else self.out
        if dim and not self.live:
            style = None
        target.print(text, style=style or ("dim" if dim else None), markup=False, highlight=False)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def print_summary(summary: RunSummary) -> None:
    out = console()
    counts = {s: summary.count(s) for s in ("succeeded", "failed", "blocked", "held", "interrupted", "pending")}
    out.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to do", markup=False)
    for step_id, message in sorted(summary.messages.items()):
        state = summary.states.get(step_id)
        if state in ("failed", "held", "pending"):
            out.print(f"  {state}: {step_id}: {message}", markup=False)
    if summary.fallback:
        out.print(f"note: {summary.fallback}", style="yellow", markup=False)
    for node, why in sorted(summary.lost_nodes.items()):
        out.print(f"note: execution node {node} was lost: {why}", style="yellow", markup=False)
