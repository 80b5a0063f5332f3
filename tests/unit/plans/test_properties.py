"""Property tests: generated valid plan sets validate cleanly and schedule; mutated ones (keys
deleted, values replaced, types swapped, text cut) never raise, they only produce findings."""

from __future__ import annotations

import copy
import re
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.plans.loader import load_plans
from orchestrator.plans.model import CITIES, THEMES
from orchestrator.plans.render import FORMATS, render
from orchestrator.plans.rules import Options, validate
from orchestrator.plans.schedule import DurationModel
from orchestrator.plans.steps import build_graph
from tests.support.plans import INFRA, START, dump, write_plans

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- valid plan sets ---------------------------------------------------------------------------

KINDS = [  # (level, kind, funding, target): every combination the target policy allows
    ("province", "agency", None, "provincial-cloud"),
    ("province", "party", None, "provincial-cloud"),
    ("province", "institution", "full", "provincial-cloud"),
    ("province", "institution", "self", "social-enterprise-cloud"),
    ("city", "agency", None, "municipal-dc"),
    ("county", "party", None, "municipal-dc"),
    ("city", "institution", "self", "social-enterprise-cloud"),
]


@st.composite
def system_specs(draw: st.DrawFn) -> dict[str, Any]:
    status = draw(st.sampled_from(["active", "active", "active", "zombie"]))
    classification = draw(st.sampled_from(["unclassified"] * 5 + ["classified", "police-sensitive"]))
    return {
        "status": status,
        "classification": classification,
        "size_gb": draw(st.one_of(st.integers(0, 2000), st.floats(0, 2000, allow_nan=False))),
        "change_gb": draw(st.floats(0, 50, allow_nan=False)),
        "share": draw(st.booleans()),
        "themes": draw(st.lists(st.sampled_from(THEMES), max_size=3, unique=True)),
        "window": draw(st.none() | st.integers(0, 60)),  # days after the start, 22:00, 8 h
        "approval": draw(st.booleans()),
    }


@st.composite
def plan_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-4 departments of 1-6 systems; dependencies point only at earlier, active, unclassified
    systems (so there is no cycle), excluded systems sit only on retained networks."""
    count = draw(st.integers(1, 4))
    plans: list[dict[str, Any]] = []
    migrating: list[str] = []  # global ids that may be depended on
    for d in range(count):
        did = f"dept-{d}"
        level, kind, funding, target = draw(st.sampled_from(KINDS))
        specs = draw(st.lists(system_specs(), min_size=1, max_size=6))
        hosts = [f"{did}-h{i}" for i in range(draw(st.integers(1, 3)))]
        systems = []
        for index, spec in enumerate(specs):
            sid = f"sys-{index}"
            item: dict[str, Any] = {
                "id": sid, "name": f"系统{d}{index}", "function": "does things", "scope": "province",
                "frequency": "daily", "approved_by": "省发改委", "approved_on": date(2012, 5, 1),
                "funding_source": "fiscal", "classification": spec["classification"], "status": spec["status"],
                "host": hosts[index % len(hosts)],
                "data": {"path": f"/srv/{sid}", "size_gb": spec["size_gb"], "daily_change_gb": spec["change_gb"]},
                "share": spec["share"], "themes": spec["themes"],
            }
            if spec["status"] == "active" and spec["classification"] == "unclassified":
                deps = draw(st.lists(st.sampled_from(migrating), max_size=3, unique=True)) if migrating else []
                if draw(st.booleans()):
                    deps.append(draw(st.sampled_from(["infra:provincial-cloud", "infra:municipal-dc-fuzhou"])))
                item["depends_on"] = deps
                if spec["window"] is not None:
                    day = date.fromordinal(START.toordinal() + spec["window"]).isoformat()
                    item["cutover"] = {"window": f"{day}T22:00+08:00/PT8H", "approval": spec["approval"]}
            systems.append(item)
        for item in systems:
            if item["status"] == "active" and item["classification"] == "unclassified":
                migrating.append(f"{did}/{item['id']}")
        networks = []
        plain = [s["id"] for s in systems if s["classification"] == "unclassified"]
        secret = [s["id"] for s in systems if s["classification"] != "unclassified"]
        if plain and draw(st.booleans()):
            networks.append({"id": f"{did}-net", "cidr": f"172.20.{d}.0/24", "migrate_to":
                             draw(st.sampled_from(["extranet", "intranet"])),
                             "systems": draw(st.lists(st.sampled_from(plain), min_size=1, unique=True))})
        if secret:
            networks.append({"id": f"{did}-secure", "cidr": f"172.21.{d}.0/24", "migrate_to": "retain",
                             "systems": secret, "retain_approval": {"by": "省保密局", "date": date(2017, 1, 1),
                                                                    "reason": "涉密"}})
        plans.append({
            "version": 1,
            "department": {"id": did, "name": f"部门{d}", "level": level,
                           "city": None if level == "province" else draw(st.sampled_from(CITIES)),
                           "kind": kind, "funding": funding,
                           "deadline": draw(st.none() | st.dates(date(2017, 12, 1), date(2018, 12, 31)))},
            "datacenter": {"id": f"{did}-dc", "hosts": hosts},
            "target": target,
            "systems": systems,
            "private_networks": networks,
        })
    return plans


@SETTINGS
@given(plan_sets(), st.integers(1, 6), st.sampled_from([0.1, 1.0, 10.0]))
def test_valid_plans_validate_and_schedule(plans: list[dict[str, Any]], parallel: int, bandwidth: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_plans(Path(tmp), *plans)
        loaded = load_plans(root)
        result = validate(loaded, Options(START, DurationModel(bandwidth_gbit=bandwidth, parallel=parallel)))
        assert result.errors == [], [f.format() for f in result.errors]
        assert {f.rule for f in result.warnings} <= {"deadline", "window"}
        sched = result.schedule
        assert sched is not None
        graph = build_graph(loaded).graph
        assert nx.is_directed_acyclic_graph(graph)
        assert set(sched.timings) == set(graph.nodes)
        for a, b in graph.edges():
            assert sched.timings[a].finish <= sched.timings[b].start + 1e-6
        missed_window = any(t.window_problem for t in sched.timings.values())
        for timing in sched.timings.values():
            # Negative slack is how the backward pass says a window cannot be met (and only then).
            assert timing.slack >= -1e-6 or missed_window
            if timing.step.window and not timing.window_problem:
                start, end = timing.step.window
                assert sched.at(timing.start) >= start and sched.at(timing.finish) <= end
        for fmt in FORMATS:
            assert render(sched, fmt)


# --- mutations -----------------------------------------------------------------------------------

ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(), st.text(max_size=20),
    st.dates(), st.just([]), st.just({}), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(["infra:provincial-cloud", "dept-0/sys-0", "2017-12-09T22:00+08:00/PT6H", "retain",
                     "zombie", "classified", "municipal-dc", "1", "172.20.0.0/24", "-1", ".inf"]),
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += paths(value, (*prefix, index))
    return out


def mutate(data: Any, path: tuple[Any, ...], how: str, value: Any) -> None:
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    key, current = path[-1], parent[path[-1]]
    if how == "delete":
        del parent[key]
    elif how == "replace":
        parent[key] = value
    elif how == "swap":  # a type swap: mapping <-> list, scalar -> one-element list, list -> its string
        if isinstance(current, dict):
            parent[key] = list(current.values())
        elif isinstance(current, list):
            parent[key] = {str(i): v for i, v in enumerate(current)} if current else "[]"
        else:
            parent[key] = [current]


@st.composite
def mutated_plan_sets(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    plans = copy.deepcopy(draw(plan_sets()))
    infra = copy.deepcopy(INFRA)
    documents: list[Any] = [*plans, infra]
    for _ in range(draw(st.integers(1, 5))):
        target = draw(st.integers(0, len(documents) - 1))
        candidates = paths(documents[target])
        if not candidates:
            continue
        path = draw(st.sampled_from(candidates))
        mutate(documents[target], path, draw(st.sampled_from(["delete", "replace", "swap"])), draw(ANY_VALUE))
    return plans, infra


def check_never_raises(root: Path) -> None:
    loaded = load_plans(root)
    for strict in (False, True):
        result = validate(loaded, Options(START, strict=strict))
        for finding in result.findings:
            assert finding.line is not None and finding.line >= 1
            assert finding.format().startswith(finding.file + ":")
        if result.schedule is not None:
            for fmt in FORMATS:
                render(result.schedule, fmt)


@SETTINGS
@given(mutated_plan_sets())
def test_mutated_plans_only_produce_findings(generated: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    plans, infra = generated
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for index, plan in enumerate(plans):
            department = plan.get("department")
            did = department.get("id") if isinstance(department, dict) else None
            name = did if isinstance(did, str) and re.fullmatch(r"[a-z0-9-]{1,40}", did) else f"dept-{index}"
            (root / f"{name}.yaml").write_text(dump(plan), encoding="utf-8")
        (root / "infra.yaml").write_text(dump(infra), encoding="utf-8")
        check_never_raises(root)


@SETTINGS
@given(plan_sets(), st.data())
def test_cut_and_spliced_yaml_text_only_produces_findings(plans: list[dict[str, Any]], data: st.DataObject) -> None:
    text = dump(plans[0])
    for _ in range(data.draw(st.integers(1, 3))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 40)))
        insert = data.draw(st.sampled_from(["", ":", "- ", "  ", "\n", "{", "]", "&a ", "*a", "!!str ", "\t", "'",
                                            "? ", "<<: ", "\x85", "\ufeff", "#"]))
        text = text[:start] + insert + text[end:]
    with tempfile.TemporaryDirectory() as tmp:
        root = write_plans(Path(tmp), *plans[1:])
        (root / f"{plans[0]['department']['id']}.yaml").write_text(text, encoding="utf-8")
        check_never_raises(root)
