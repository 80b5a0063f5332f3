"""The scorecard as Markdown (for a ledger in a repository or a ticket) and JSON (for tools)."""

from __future__ import annotations

import json
from datetime import date, timedelta

from .report import MILESTONES, Report, Score, Unit

FORMATS = ("markdown", "json", "html")
VERDICT_TEXT = {"met": "✅ met 达成", "late": "❌ late 逾期", "at-risk": "⚠️ at risk 有风险",
                "on-track": "🕒 on track 按计划", "n/a": "— n/a"}


def cell(score: Score) -> str:
    if not score.total:
        return "—"
    text = f"{score.done}/{score.total} {VERDICT_TEXT[score.verdict]}"
    if score.deadline:
        text += f" (by {score.deadline})"
    return text


def _unit_table(units: list[Unit], title_col: str) -> list[str]:
    header = f"| {title_col} | " + " | ".join(f"{zh} {en}" for _, zh, en in MILESTONES) + " | overall 总体 |"
    lines = [header, "|" + " --- |" * (len(MILESTONES) + 2)]
    for unit in units:
        name = f"`{unit.id}` {unit.name}" if unit.kind else f"{unit.name} `{unit.id}`"
        row = " | ".join(cell(unit.scores[key]) for key, _, _ in MILESTONES)
        lines.append(f"| {name} | {row} | {VERDICT_TEXT[unit.verdict]} |")
    return lines


def render_markdown(report: Report) -> str:
    share = report.share
    lines = [
        "# 政务信息系统整合共享 进度报告 — Integration and sharing scorecard",
        "",
        f"Plans `{report.plans}`; journal `{report.journal or 'none: progress is as planned, nothing is done'}`; "
        f"schedule from {report.start}.",
        "",
        "## 全省 Province",
        "",
        *_unit_table([report.province], "scope 范围"),
        "",
        "## 共享平台汇聚 Sharing platform",
        "",
        f"- Systems aggregated on the sharing platform 已汇聚: **{share.done}/{share.active} = "
        f"{share.done_ratio:.0%}** (target 目标 {share.target:.0%} by {share.deadline}: "
        f"{VERDICT_TEXT[share.verdict]})",
        f"- Planned 计划汇聚 (share: true): {share.planned}/{share.active} = {share.planned_ratio:.0%}; "
        f"scheduled by {share.deadline}: {share.planned_by_deadline}/{share.active}",
        "- Counted: active, unclassified systems; excluded systems and zombies are not counted.",
        "",
        "| theme 专题库 | status | systems feeding it |",
        "| --- | --- | --- |",
    ]
    for feed in report.themes:
        systems = ", ".join(f"`{s}`{' ✅' if s in feed.done else ''}" for s in feed.systems) or "—"
        lines.append(f"| {feed.label} {feed.theme} | {feed.status} | {systems} |")
    lines += ["", "## 各市 Cities", "", *_unit_table(report.cities, "city 城市"),
              "", "## 各部门 Departments", "", *_unit_table(report.departments, "department 部门"), ""]
    lines += ["## 不纳入整合 Excluded systems", "",
              "Excluded by POLICY rule 2; listed for the ledger, never counted as gaps.", ""]
    if report.excluded:
        lines += ["| system | name | reason |", "| --- | --- | --- |"]
        lines += [f"| `{e.system}` | {e.name or ''} | {e.reason} |" for e in report.excluded]
    else:
        lines.append("None.")
    lines += ["", "## 保留专网 Retained private networks", ""]
    if report.retained_networks:
        lines += ["| network | approved by | reason |", "| --- | --- | --- |"]
        lines += [f"| `{n['network']}` | {n['by']} | {n['reason']} |" for n in report.retained_networks]
    else:
        lines.append("None.")
    lines += ["", "## 剩余工作 What remains", "", "| department | start | finish | first deadline | steps | |",
              "| --- | --- | --- | --- | --- | --- |"]
    for row in report.gantt:
        lines.append(f"| `{row.department}` | {row.start} | {row.finish} | {row.deadline or ''} | {row.steps} "
                     f"| {'❌ late' if row.late else ''} |")
    lines += _mermaid_gantt(report)
    lines += ["", "## 燃尽 Burn-down", "", "| milestone | total | left now | planned zero | deadlines |",
              "| --- | --- | --- | --- | --- |"]
    for burn in report.burndown:
        left = burn.actual[-1][1] if burn.actual else burn.total
        zero = next((day for day, n in burn.planned if n == 0), "—") if burn.total else "—"
        lines.append(f"| {burn.milestone} | {burn.total} | {left} | {zero} | {', '.join(burn.deadlines)} |")
    return "\n".join(lines) + "\n"


def _mermaid_gantt(report: Report) -> list[str]:
    """The remaining work as a Mermaid Gantt chart (GitHub and GitLab render it); late rows in red."""
    if not report.gantt:
        return []
    lines = ["", "```mermaid", "gantt", "    title Remaining work 剩余工作", "    dateFormat YYYY-MM-DD",
             "    axisFormat %Y-%m"]
    for index, row in enumerate(report.gantt):
        tags = ["crit"] if row.late else []
        start, finish = row.start[:10], row.finish[:10]
        if finish <= start:
            finish = (date.fromisoformat(start) + timedelta(days=1)).isoformat()
        lines.append(f"    section {row.department}")
        lines.append(f"    {row.steps} steps :{', '.join([*tags, f'r{index}', start, finish])}")
        if row.deadline:
            lines.append(f"    deadline {row.deadline} :milestone, d{index}, {row.deadline}, 0d")
    return [*lines, "```"]


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n"


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "html":
        from .report_html import render_html

        return render_html(report)
    return render_markdown(report)
