"""Every output format of `fjmig plan`: parses, and carries every step with what it promises."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from orchestrator.plans.loader import load_plans
from orchestrator.plans.render import FORMATS, render, to_json_data
from orchestrator.plans.schedule import Schedule, schedule
from orchestrator.plans.steps import build_graph
from tests.support import PLANS


@pytest.fixture(scope="module")
def sched() -> Schedule:
    return schedule(build_graph(load_plans(PLANS)), date(2017, 11, 7))


def test_json_has_every_step_with_its_fields(sched: Schedule) -> None:
    data = json.loads(render(sched, "json"))
    assert data == json.loads(json.dumps(to_json_data(sched)))  # the one-step-per-line layout is the same data
    steps = {s["id"]: s for s in data["steps"]}
    assert steps.keys() == sched.timings.keys()
    for sid, step in steps.items():
        timing = sched.timings[sid]
        assert step["wave"] == timing.wave
        assert step["start"] == sched.at(timing.start).isoformat()
        assert step["finish"] == sched.at(timing.finish).isoformat()
        assert step["slack_hours"] == round(timing.slack / 3600, 4)
        assert step["deadline"] == (timing.step.deadline.isoformat() if timing.step.deadline else None)
        assert step["depends_on"] == sorted(sched.graph.graph.predecessors(sid))
        assert step["critical"] == (sid in sched.critical_path)
    summary = data["summary"]
    assert summary["critical_path"] == sched.critical_path
    assert summary["waves"] == len(sched.waves)
    assert summary["steps"] == sum(1 for t in sched.timings.values() if t.step.kind != "milestone")
    assert summary["start"] == "2017-11-07T00:00:00+08:00"
    windowed = steps["fj-aic/registry:cutover"]
    assert windowed["window"] == ["2017-11-24T22:00:00+08:00", "2017-11-25T04:00:00+08:00"]
    assert windowed["approval"] is True and windowed["window_problem"] is None


TASK = re.compile(r"^    (?P<label>[^:#;]+) :(?:crit, )?(?P<id>s_\w+), (?P<start>\d{4}-\d\d-\d\d \d\d:\d\d), "
                  r"(?P<end>\d{4}-\d\d-\d\d \d\d:\d\d)$")


def test_mermaid_gantt_has_a_line_per_step(sched: Schedule) -> None:
    text = render(sched, "mermaid")
    lines = text.splitlines()
    assert lines[0] == "gantt"
    assert "    dateFormat YYYY-MM-DD HH:mm" in lines
    tasks = [TASK.match(line) for line in lines if not line.startswith(("gantt", "    title", "    dateFormat",
                                                                        "    axisFormat", "    section"))]
    assert all(tasks), [line for line, m in zip(lines, tasks, strict=False) if not m]
    expected = [t for t in sched.timings.values() if t.step.kind != "milestone"]
    assert len(tasks) == len(expected)
    assert len({m["id"] for m in tasks if m}) == len(tasks)  # ids are unique
    assert all(m["start"] < m["end"] for m in tasks if m)  # every bar has a length
    sections = [line.removeprefix("    section ") for line in lines if line.startswith("    section ")]
    assert sections == sorted({t.step.dept for t in expected})
    crit = [line for line in lines if ":crit, " in line]
    assert len(crit) == sum(1 for s in sched.critical_path if not s.startswith("infra:"))


def test_mermaid_ids_do_not_collide() -> None:
    from orchestrator.plans.render import _mermaid_id

    assert _mermaid_id("ab-c/de:presync") != _mermaid_id("ab/c-de:presync")
    assert _mermaid_id("ab--c/de:x") != _mermaid_id("ab/-c/de:x")


DOT_NODE = re.compile(r'^  "(?P<id>[^"]+)" \[(?P<attrs>.*)\];$')
DOT_EDGE = re.compile(r'^  "(?P<a>[^"]+)" -> "(?P<b>[^"]+)";$')


def test_dot_is_a_digraph_of_every_step_and_edge(sched: Schedule) -> None:
    text = render(sched, "dot")
    lines = text.splitlines()
    assert lines[0] == "digraph migration {" and lines[-1] == "}"
    nodes = {m["id"] for m in map(DOT_NODE.match, lines) if m}
    edges = {(m["a"], m["b"]) for m in map(DOT_EDGE.match, lines) if m}
    assert nodes == set(sched.timings)
    assert edges == set(sched.graph.graph.edges())
    body = lines[1:-1]
    assert len(body) == 2 + len(nodes) + len(edges)  # rankdir, node defaults, then nothing unparsed
    assert text.count("{") == text.count("}") == 1


def test_dot_parses_with_pydot_when_available(sched: Schedule) -> None:
    pydot = pytest.importorskip("pydot")
    (graph,) = pydot.graph_from_dot_data(render(sched, "dot"))
    assert len(graph.get_edges()) == sched.graph.graph.number_of_edges()


def test_dot_is_accepted_by_graphviz_when_installed(sched: Schedule, tmp_path: Path) -> None:
    exe = shutil.which("dot")
    if exe is None:
        pytest.skip("graphviz is not installed (the structural test above still checks the DOT)")
    proc = subprocess.run([exe, "-Tcanon"], input=render(sched, "dot"), capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(" -> ") == sched.graph.graph.number_of_edges()


def test_markdown_has_a_table_per_wave(sched: Schedule) -> None:
    text = render(sched, "markdown")
    lines = text.splitlines()
    assert lines[0] == "# Migration schedule"
    headings = [i for i, line in enumerate(lines) if line.startswith("## Wave ")]
    assert [lines[i] for i in headings] == [f"## Wave {n}" for n in range(1, len(sched.waves) + 1)]
    for i in headings:
        assert lines[i + 2] == "| step | start | finish | takes | slack | deadline | notes |"
        assert lines[i + 3] == "| --- | --- | --- | --- | --- | --- | --- |"
    rows = [line for line in lines if line.startswith("| `")]
    assert len(rows) == len(sched.timings)
    assert all(line.count("|") == 8 for line in rows)


def test_text_lists_each_step_once_per_wave(sched: Schedule) -> None:
    text = render(sched, "text")
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("Wave ")] == [f"Wave {n}" for n in range(1, len(sched.waves) + 1)]
    for sid in sched.timings:
        assert sum(1 for line in lines if line.split("  ")[0] == sid) == 1
    assert lines[-1] == "critical path: " + " -> ".join(sched.critical_path)
    assert "\x1b[" not in text  # plain text, never colour codes


def test_flags_show_late_and_window_problems(tmp_path: Path) -> None:
    late = schedule(build_graph(load_plans(PLANS)), date(2018, 7, 1))
    data = json.loads(render(late, "json"))
    assert data["summary"]["late_steps"] == len(late.deadline_misses()) > 0
    late_ids = {s["id"] for s in data["steps"] if s["late"]}
    assert late_ids == {t.step.id for t in late.deadline_misses()}
    assert any("window: cannot start inside its window" in line for line in render(late, "text").splitlines())
    assert "late" in render(late, "markdown")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_an_empty_schedule(fmt: str, tmp_path: Path) -> None:
    from tests.support.plans import department, system, write_plans

    plan = department(systems=[system("secret", classification="classified")])
    plan["datacenter"] = None
    empty = schedule(build_graph(load_plans(write_plans(tmp_path, plan))), date(2017, 11, 7))
    assert render(empty, fmt).endswith("\n")
