"""A small plan set and a journal written at chosen times, for the report's tests (a pytest plugin:
its fixtures `plans_dir` and `journal_html` are available to every test)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.journal import Journal
from orchestrator.journal import records as journal_records
from orchestrator.plans.loader import load_plans
from orchestrator.plans.schedule import CST
from orchestrator.plans.steps import build_graph


def system(sid: str, host: str, *, share: bool = False, themes: str = "[]", status: str = "active",
           classification: str = "unclassified", approved_by: str = "省发改委") -> str:
    return f"""
  - id: {sid}
    name: 系统 {sid}
    function: does {sid}
    scope: province
    frequency: daily
    approved_by: "{approved_by}"
    approved_on: 2014-01-01
    funding_source: fiscal
    classification: {classification}
    status: {status}
    host: {host}
    data: {{path: /srv/{sid}, size_gb: 10, daily_change_gb: 0.1}}
    share: {'true' if share else 'false'}
    themes: {themes}"""


FJ_AAA = """version: 1
department: {id: fj-aaa, name: 福建省甲厅, level: province, city: null, kind: agency, deadline: 2017-12-31}
datacenter: {id: aaa-dc, hosts: [aaa-app01]}
target: provincial-cloud
systems:""" + "".join([
    system("s1", "aaa-app01", share=True, themes="[credit]"),
    system("s2", "aaa-app01", share=True, themes="[legal-person, credit]"),
    system("s3", "aaa-app01"),
    system("z1", "aaa-app01", status="zombie"),
    system("c1", "aaa-app01", classification="classified"),
]) + """
private_networks:
  - {id: aaa-net, cidr: 172.20.0.0/24, systems: [s1, s2, s3], migrate_to: extranet}
"""

XM_BBB = """version: 1
department: {id: xm-bbb, name: 厦门市乙局, level: city, city: xiamen, kind: agency}
datacenter: {id: bbb-dc, hosts: [bbb-app01]}
target: municipal-dc
systems:""" + "".join([
    system("t1", "bbb-app01", share=True, themes="[transport]"),
    system("t2", "bbb-app01", approved_by=""),
    system("p1", "bbb-app01", classification="police-sensitive"),
    system("z2", "bbb-app01", status="zombie"),
]) + """
private_networks:
  - id: bbb-net
    cidr: 172.21.0.0/24
    systems: [p1]
    migrate_to: retain
    retain_approval: {by: 省公安厅, date: 2017-10-01, reason: 公安信息网}
"""


@pytest.fixture
def plans_dir(tmp_path: Path) -> Path:
    root = tmp_path / "plans"
    root.mkdir()
    (root / "fj-aaa.yaml").write_text(FJ_AAA, encoding="utf-8")
    (root / "xm-bbb.yaml").write_text(XM_BBB, encoding="utf-8")
    return root


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2017, 11, 7, tzinfo=CST)

    def __call__(self) -> datetime:
        return self.at


def write_journal(path: Path, plans_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A journal as the executor would leave it, written through the journal's API at chosen times."""
    clock = Clock()
    monkeypatch.setattr(journal_records, "now", clock)
    steps = build_graph(load_plans(plans_dir)).steps
    with Journal.open(path) as journal:
        run = journal.start_run("tester", {"plans": str(plans_dir)})

        def done(step: str, day: date, state: str = "succeeded") -> None:
            assert step in steps, step
            clock.at = datetime.combine(day, datetime.min.time(), tzinfo=CST) + timedelta(hours=10)
            journal.record(run, step, "running")
            clock.at += timedelta(hours=1)
            journal.record(run, step, state, None if state == "succeeded" else "rsync exited 23")

        for step in sorted(s for s in steps if s.startswith("fj-aaa/")):
            done(step, date(2017, 12, 1))
        for kind in ("presync", "cutover", "verify", "share"):
            done(f"xm-bbb/t1:{kind}", date(2018, 7, 5))  # after the city's 2018-06-30
        done("xm-bbb/z2:decommission", date(2018, 3, 1))
        done("xm-bbb/t2:presync", date(2018, 3, 2))
        done("xm-bbb/t2:cutover", date(2018, 3, 3), state="failed")
        journal.finish_run(run, "failed")


@pytest.fixture
def journal_html(plans_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "journal.db"
    write_journal(path, plans_dir, monkeypatch)
    out = tmp_path / "report.html"
    monkeypatch.undo()
    status = main(["report", str(plans_dir), "--journal", str(path), "--start", "2017-11-07",
                   "--format", "html", "-o", str(out)])
    assert status == 0
    return out
