"""The schedule, checked against numbers worked out by hand.

The duration model at 1 Gbit/s moves one GB in 8 s:
  presync      = size_gb × 8
  cutover      = 1800 (overhead) + daily_change_gb × 8
  verify       = 300 + size_gb × 8 / 4
  close        = 3600
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.plans.kinds import TRANSFER_KINDS
from orchestrator.plans.loader import load_plans
from orchestrator.plans.schedule import CST, DurationModel, Schedule, origin_for, schedule
from orchestrator.plans.steps import build_graph
from tests.support import PLANS
from tests.support.plans import check, department, system, write_plans

START = date(2017, 11, 7)
P = "fj-test/"


def two_systems(**small: Any) -> dict[str, Any]:
    """big: 450 GB, no changes; small: 225 GB, 22.5 GB/day, depends on big. No network."""
    plan = department(systems=[
        system("big", data={"path": "/srv/big", "size_gb": 450, "daily_change_gb": 0}),
        system("small", data={"path": "/srv/small", "size_gb": 225, "daily_change_gb": 22.5},
               depends_on=["fj-test/big"], **small),
    ])
    plan["datacenter"]["hosts"] = ["h-app"]
    return plan


def run(tmp_path: Path, plan: dict[str, Any], **model: Any) -> Schedule:
    plans = load_plans(write_plans(tmp_path, plan))
    assert plans.findings == []
    return schedule(build_graph(plans), START, DurationModel(**model))


def times(sched: Schedule) -> dict[str, tuple[float, float, float]]:
    return {sid.removeprefix(P): (t.start, t.finish, round(t.slack, 6)) for sid, t in sched.timings.items()}


def test_hand_checked_schedule_with_free_slots(tmp_path: Path) -> None:
    # Durations: big:presync 450×8 = 3600, big:cutover 1800, big:verify 300 + 900 = 1200;
    # small:presync 225×8 = 1800, small:cutover 1800 + 180 = 1980, small:verify 300 + 450 = 750;
    # close 3600.
    # Forward pass (4 slots, nothing waits for a slot):
    #   big:presync 0-3600, big:cutover 3600-5400, big:verify 5400-6600
    #   small:presync 0-1800; small:cutover waits for big:verify: 6600-8580; small:verify 8580-9330
    #   close waits for both verifies: 9330-12930 = makespan.
    # Backward pass (latest finish LF, slack = LF - finish):
    #   close LF 12930 (0); small:verify LF 12930-3600 = 9330 (0); small:cutover LF 9330-750 = 8580 (0)
    #   big:verify LF min(9330, 8580-1980 = 6600) = 6600 (0); big:cutover 6600-1200 = 5400 (0);
    #   big:presync 5400-1800 = 3600 (0); small:presync LF 6600, finish 1800: slack 4800.
    sched = run(tmp_path, two_systems())
    assert times(sched) == {
        "big:presync": (0, 3600, 0),
        "big:cutover": (3600, 5400, 0),
        "big:verify": (5400, 6600, 0),
        "small:presync": (0, 1800, 4800),
        "small:cutover": (6600, 8580, 0),
        "small:verify": (8580, 9330, 0),
        "fjtest-dc:close": (9330, 12930, 0),
    }
    assert sched.makespan == 12930
    assert sched.critical_path == [P + s for s in (
        "big:presync", "big:cutover", "big:verify", "small:cutover", "small:verify", "fjtest-dc:close")]
    assert [t.step.id for t in sched.timings.values() if t.critical] == [
        s for s in sched.timings if s in sched.critical_path]
    # Waves are topological generations.
    assert sched.waves == [
        [P + "big:presync", P + "small:presync"], [P + "big:cutover"], [P + "big:verify"],
        [P + "small:cutover"], [P + "small:verify"], [P + "fjtest-dc:close"]]
    assert {sid.removeprefix(P): t.wave for sid, t in sched.timings.items()} == {
        "big:presync": 1, "small:presync": 1, "big:cutover": 2, "big:verify": 3, "small:cutover": 4,
        "small:verify": 5, "fjtest-dc:close": 6}
    assert sched.at(sched.makespan) == datetime(2017, 11, 7, 3, 35, 30, tzinfo=CST)


def test_hand_checked_schedule_with_one_slot(tmp_path: Path) -> None:
    # One transfer at a time; verify and close take no slot. Priority is the longest remaining
    # chain (tail): big:presync 12930 > small:presync 8130, then big:cutover 9330 > small:presync.
    #   big:presync 0-3600, big:cutover 3600-5400, then small:presync 5400-7200 (big:verify
    #   5400-6600 runs beside it), small:cutover 7200-9180, small:verify 9180-9930, close 9930-13530.
    # Critical path: close <- small:verify <- small:cutover <- small:presync (its binding
    # predecessor: big:verify finished at 6600, before 7200); small:presync has no predecessor.
    # Slack: small:cutover may finish as late as 13530-3600-750 = 9180 (0); big:verify must
    # finish before small:cutover's latest start 9180-1980 = 7200: slack 600.
    sched = run(tmp_path, two_systems(), parallel=1)
    assert times(sched) == {
        "big:presync": (0, 3600, 600),
        "big:cutover": (3600, 5400, 600),
        "big:verify": (5400, 6600, 600),
        "small:presync": (5400, 7200, 0),
        "small:cutover": (7200, 9180, 0),
        "small:verify": (9180, 9930, 0),
        "fjtest-dc:close": (9930, 13530, 0),
    }
    assert sched.critical_path == [P + s for s in ("small:presync", "small:cutover", "small:verify",
                                                   "fjtest-dc:close")]


def test_cutover_starts_inside_its_window(tmp_path: Path) -> None:
    # small's window opens at 03:00 (+08:00) = 10800 s and lasts 1 h: its cutover waits for it,
    # 10800-12780 (fits: ends before 14400); verify 12780-13530; close 13530-17130.
    # The window bounds small:cutover's latest finish at 14400 (slack 1620); without it the slack
    # would be 0 (it is on the critical path).
    sched = run(tmp_path, two_systems(cutover={"window": "2017-11-07T03:00+08:00/PT1H"}))
    cut = sched.timings[P + "small:cutover"]
    assert (cut.start, cut.finish, cut.window_problem) == (10800, 12780, None)
    assert sched.makespan == 17130
    assert cut.slack == 0  # close must still end by the makespan: 17130 - 3600 - 750 = 12780
    assert sched.timings[P + "small:presync"].slack == 12780 - 1980 - 1800


def test_window_bounds_latest_finish(tmp_path: Path) -> None:
    # A second, independent long system keeps the makespan far out, so small:cutover's latest
    # finish comes from its window end (14400) and not from the end of the schedule.
    plan = two_systems(cutover={"window": "2017-11-07T03:00+08:00/PT1H"})
    plan["systems"].append(system("huge", host="h-app", data={"path": "/srv/huge", "size_gb": 45_000}))
    sched = run(tmp_path, plan)
    cut = sched.timings[P + "small:cutover"]
    assert cut.finish == 12780 and cut.slack == 14400 - 12780


def test_cutover_that_cannot_fit_its_window(tmp_path: Path) -> None:
    sched = run(tmp_path, two_systems(cutover={"window": "2017-11-07T03:00+08:00/PT30M"}))
    assert sched.timings[P + "small:cutover"].window_problem == "does not fit its window"  # 1980 s > 1800 s
    sched = run(tmp_path, two_systems(cutover={"window": "2017-11-07T01:00+08:00/PT1H"}))
    # the dependency is verified at 6600 s (01:50): it starts inside the window, ends after it
    assert sched.timings[P + "small:cutover"].window_problem == "does not fit its window"
    sched = run(tmp_path, two_systems(cutover={"window": "2017-11-07T01:00+08:00/PT30M"}))
    # ... and for a window that closes at 01:30 it is too late to start at all
    assert sched.timings[P + "small:cutover"].window_problem == "cannot start inside its window"


def test_bandwidth_scales_transfers(tmp_path: Path) -> None:
    slow = run(tmp_path / "a", two_systems(), bandwidth_gbit=1)
    fast = run(tmp_path / "b", two_systems(), bandwidth_gbit=4)
    assert fast.timings[P + "big:presync"].duration == slow.timings[P + "big:presync"].duration / 4 == 900
    assert fast.timings[P + "small:cutover"].duration == 1800 + 22.5 * 8 / 4  # overhead does not scale


def test_at_most_parallel_transfers_at_once(tmp_path: Path) -> None:
    plan = department(systems=[system(f"sys-{i}", share=True, data={"path": f"/srv/s{i}", "size_gb": 10 + 7 * i})
                               for i in range(9)])
    plan["systems"].append(system("old", status="zombie", data={"path": "/srv/old", "size_gb": 30}))
    plan["datacenter"]["hosts"] = ["h-app"]
    for parallel in (1, 2, 3):
        sched = run(tmp_path / str(parallel), plan, parallel=parallel)
        transfers = [t for t in sched.timings.values() if t.step.kind in TRANSFER_KINDS]
        events = sorted([(t.start, 1) for t in transfers] + [(t.finish, -1) for t in transfers])
        running = peak = 0
        for _, delta in events:  # finishes sort before starts at the same instant
            running += delta
            peak = max(peak, running)
        assert peak == parallel


def test_milestone_due_date_delays_the_cutover(tmp_path: Path) -> None:
    plan = two_systems()
    plan["systems"][0]["depends_on"] = ["infra:municipal-dc-fuzhou"]  # due 2018-04-30
    sched = run(tmp_path, plan)
    due = (origin_for(date(2018, 4, 30)) - origin_for(START)).total_seconds()
    assert sched.timings["infra:municipal-dc-fuzhou"].start == due
    assert sched.timings[P + "big:cutover"].start == due


def test_each_step_starts_after_its_dependencies(tmp_path: Path) -> None:
    plans = load_plans(PLANS)
    graph = build_graph(plans)
    sched = schedule(graph, START)
    for a, b in graph.graph.edges():
        assert sched.timings[a].finish <= sched.timings[b].start + 1e-9
        assert sched.timings[a].wave < sched.timings[b].wave
    assert all(t.slack >= -1e-6 for t in sched.timings.values())
    assert sched.critical_path and sched.timings[sched.critical_path[-1]].finish == sched.makespan


def test_deadline_misses_agree_with_finish_dates(tmp_path: Path) -> None:
    plans = load_plans(PLANS)
    for start in (date(2017, 11, 7), date(2018, 2, 20), date(2018, 6, 30), date(2019, 1, 1)):
        sched = schedule(build_graph(plans), start)
        expected = {sid for sid, t in sched.timings.items()
                    if t.step.kind != "milestone" and t.step.deadline and sched.finish_date(sid) > t.step.deadline}
        assert {t.step.id for t in sched.deadline_misses()} == expected


def test_deadline_at_midnight_boundary(tmp_path: Path) -> None:
    """A step that ends exactly at 00:00 the day after its deadline is late; one second earlier is not."""
    sched = run(tmp_path, two_systems())
    timing = sched.timings[P + "big:presync"]
    end = sched.deadline_end(timing.step.deadline)
    for finish, late in ((end - 1, False), (end, True)):
        timing.finish = finish
        sched.__dict__.pop("_late", None)
        assert sched.is_late(timing) is late
        assert (sched.finish_date(timing.step.id) > timing.step.deadline) is late


def test_schedule_of_nothing(tmp_path: Path) -> None:
    plan = department(systems=[system("secret", classification="classified")])
    plan["datacenter"] = None
    sched = run(tmp_path, plan)
    assert (sched.timings, sched.critical_path, sched.makespan, sched.waves) == ({}, [], 0.0, [])


@pytest.mark.parametrize("start", [date(2017, 11, 7), date(2018, 6, 30)])
def test_validate_uses_the_schedule(tmp_path: Path, start: date) -> None:
    _, result = check(write_plans(tmp_path, two_systems()), start=start)
    assert result.schedule is not None and result.schedule.origin == origin_for(start)
    assert result.schedule.origin.utcoffset() == timedelta(hours=8)
