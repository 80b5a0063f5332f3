"""`fjmig report`: counts, the 60% figure and deadline verdicts, from plans alone and with a journal
written through the journal's own API; the HTML is self-contained."""

from __future__ import annotations

import json
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.plans.loader import load_plans
from orchestrator.plans.rules import Options, validate
from orchestrator.review.report import Report, build_report, load_progress
from orchestrator.review.report_html import render_html
from orchestrator.review.report_render import render_markdown
from tests.support import PLANS
from tests.support.reports import write_journal


def report_for(plans_dir: Path, start: date, journal: Path | None = None) -> Report:
    plans = load_plans(plans_dir)
    validation = validate(plans, Options(start=start))
    assert [f.rule for f in validation.errors] == ["census-incomplete"]  # t2, on purpose
    return build_report(plans, validation, load_progress(journal) if journal else None)


def scores(report: Report, unit: str) -> dict[str, tuple[int, int, str]]:
    units = {u.id: u for u in [*report.departments, *report.cities, report.province]}
    return {key: (s.done, s.total, s.verdict) for key, s in units[unit].scores.items()}


def test_plans_alone_counts_share_and_verdicts(plans_dir: Path) -> None:
    report = report_for(plans_dir, date(2017, 11, 7))
    assert scores(report, "all") == {
        "census": (8, 9, "at-risk"),           # t2 lacks approved_by
        "zombies": (0, 2, "on-track"),
        "moved": (0, 5, "on-track"),           # excluded and zombie systems are not counted
        "shared": (0, 3, "on-track"),
        "networks": (0, 1, "on-track"),        # the retained network is not work to do
        "datacenter": (0, 2, "on-track"),
    }
    assert scores(report, "fj-aaa")["census"] == (5, 5, "met")
    assert scores(report, "xiamen")["census"] == (3, 4, "at-risk")
    share = report.share
    assert (share.active, share.planned, share.done, share.planned_by_deadline) == (5, 3, 0, 3)
    assert share.planned_ratio == pytest.approx(0.6) and share.verdict == "on-track"
    assert [(e.system, e.classification) for e in report.excluded] == [
        ("fj-aaa/c1", "classified"), ("xm-bbb/p1", "police-sensitive")]
    assert report.retained_networks[0]["network"] == "xm-bbb/bbb-net"
    feeds = {t.theme: (t.systems, t.status) for t in report.themes}
    assert feeds["credit"] == (["fj-aaa/s1", "fj-aaa/s2"], "planned")
    assert feeds["transport"] == (["xm-bbb/t1"], "planned")
    assert feeds["energy"] == ([], "gap") and len(feeds) == 10
    md = render_markdown(report)
    assert "**0/5 = 0%** (target 目标 60% by 2017-12-31" in md
    assert "Planned 计划汇聚 (share: true): 3/5 = 60%" in md
    assert "| `fj-aaa/c1` | 系统 c1 | 涉密 classified" in md


def test_plans_alone_late_and_at_risk_from_the_schedule(plans_dir: Path) -> None:
    late = report_for(plans_dir, date(2018, 1, 5))  # after fj-aaa's own 2017-12-31 deadline
    assert scores(late, "fj-aaa")["moved"] == (0, 3, "late")
    assert scores(late, "fj-aaa")["zombies"] == (0, 1, "on-track")  # decommission: 2018-02-28
    assert scores(late, "xm-bbb")["moved"] == (0, 2, "on-track")
    assert late.share.verdict == "late"
    close = report_for(plans_dir, date(2017, 12, 28))  # feasible, but with days, not weeks, to spare
    assert scores(close, "fj-aaa")["moved"] == (0, 3, "at-risk")
    assert scores(close, "fj-aaa")["moved"][2] != "met"
    verdicts = {s.verdict for u in close.departments for k, s in u.scores.items() if k != "census"}
    assert "met" not in verdicts  # without a journal nothing is done


def test_journal_progress_counts_share_and_verdicts(plans_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "journal.db"
    write_journal(path, plans_dir, monkeypatch)
    report = report_for(plans_dir, date(2017, 11, 7), path)
    assert scores(report, "fj-aaa") == {
        "census": (5, 5, "met"), "zombies": (1, 1, "met"), "moved": (3, 3, "met"), "shared": (2, 2, "met"),
        "networks": (1, 1, "met"), "datacenter": (1, 1, "met")}
    assert scores(report, "xm-bbb") == {
        "census": (3, 4, "at-risk"),
        "zombies": (1, 1, "met"),
        "moved": (1, 2, "at-risk"),           # t2's cutover failed
        "shared": (1, 1, "late"),             # done, but after 2018-06-30
        "networks": (0, 0, "n/a"),
        "datacenter": (0, 1, "on-track"),
    }
    assert scores(report, "xiamen")["shared"] == (1, 1, "late")
    assert report.province.verdict == "late"
    share = report.share
    assert (share.done, share.active) == (3, 5) and share.done_ratio == pytest.approx(0.6)
    assert share.verdict == "met"
    feeds = {t.theme: t for t in report.themes}
    assert feeds["credit"].done == ["fj-aaa/s1", "fj-aaa/s2"] and feeds["credit"].status == "fed"
    moved = next(b for b in report.burndown if b.milestone == "moved")
    assert moved.actual == [("2017-11-07", 5), ("2017-12-01", 2), ("2018-07-05", 1)]
    assert moved.planned[0] == ("2017-11-07", 5) and moved.planned[-1][1] == 0
    remaining = {row.department: row.steps for row in report.gantt}
    assert remaining == {"xm-bbb": 3}  # t2 cutover and verify, bbb-dc close (t2 presync is done)
    md = render_markdown(report)
    assert "**3/5 = 60%** (target 目标 60% by 2017-12-31: ✅ met 达成)" in md


class Balance(HTMLParser):
    """Checks that every non-void element is closed, in order."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.count: dict[str, int] = {}
        self.problems: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.count[tag] = self.count.get(tag, 0) + 1
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.count[tag] = self.count.get(tag, 0) + 1
        self.attrs += attrs

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]} ")
        else:
            self.stack.pop()


def test_html_is_self_contained_and_has_the_charts(journal_html: Path) -> None:
    html = journal_html.read_text(encoding="utf-8")
    parser = Balance()
    parser.feed(html)
    parser.close()
    assert parser.problems == [] and parser.stack == []
    assert '<html lang="zh-CN">' in html
    # milestone bars, share bars, five burn-downs, the Gantt
    assert parser.count["svg"] == 8
    assert parser.count["path"] >= 5 + 5  # planned and actual lines
    for label in ("系统迁移 Systems moved", "接入共享平台 Connected to the sharing platform", "燃尽图 Burn-down",
                  "剩余工作 Remaining work", "专题库 Thematic data sets", "涉密 classified"):
        assert label in html
    lowered = html.lower()
    for external in ("http:", "https:", "//", "<script", "<link", "@import", "url(", "src="):
        assert external not in lowered, external
    assert not any(name in ("href", "src") for name, _ in parser.attrs)


def test_report_cli_formats_and_errors(plans_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(plans_dir), "--start", "2017-11-07", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["share"]["planned_ratio"] == 0.6 and data["journal"] is None
    assert data["province"]["scores"]["moved"]["total"] == 5
    assert main(["report", str(plans_dir), "--journal", str(tmp_path / "missing.db")]) == 1
    assert "missing.db: no such journal" in capsys.readouterr().err
    (tmp_path / "junk.db").write_text("not sqlite", encoding="utf-8")
    assert main(["report", str(plans_dir), "--journal", str(tmp_path / "junk.db")]) == 1
    err = capsys.readouterr().err
    assert "junk.db" in err and "Traceback" not in err
    assert main(["report", str(tmp_path / "nowhere")]) == 2


def test_shipped_plans_report(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped plans: everything the policy counts adds up (no system lost or counted twice)."""
    plans = load_plans(PLANS)
    report = build_report(plans, validate(plans, Options(start=date(2017, 11, 7))), None)
    systems = list(plans.systems.values())
    moving = sum(1 for _, s in systems if s.migrates)
    zombies = sum(1 for _, s in systems if s.status == "zombie" and not s.excluded)
    excluded = sum(1 for _, s in systems if s.excluded)
    province = report.province.scores
    assert province["moved"].total == report.share.active == moving
    assert province["zombies"].total == zombies
    assert len(report.excluded) == excluded > 0
    assert province["moved"].total + province["zombies"].total + excluded == len(systems)
    assert sum(c.scores["moved"].total for c in report.cities) == moving


def test_render_html_escapes_names(plans_dir: Path) -> None:
    text = (plans_dir / "fj-aaa.yaml").read_text(encoding="utf-8").replace("福建省甲厅", "<b>甲厅</b> & co")
    (plans_dir / "fj-aaa.yaml").write_text(text, encoding="utf-8")
    html = render_html(report_for(plans_dir, date(2017, 11, 7)))
    assert "&lt;b&gt;甲厅&lt;/b&gt; &amp; co" in html and "<b>甲厅" not in html
