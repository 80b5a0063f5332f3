"""The scorecard as one self-contained HTML page: inline CSS and SVG, no scripts, no external URLs.

Inspectors open it from a file or an e-mail on a machine without network access, so nothing in
it may be fetched; labels are bilingual (Chinese first, as the policy documents are).
"""

from __future__ import annotations

from datetime import date
from html import escape

from .report import MILESTONES, Report, Score, Unit
from .svg import Bar, Series, gantt, line_chart, progress_bars

VERDICT = {"met": ("达成", "met"), "late": ("逾期", "late"), "at-risk": ("有风险", "at risk"),
           "on-track": ("按计划", "on track"), "n/a": ("不适用", "n/a")}
THEME_STATUS = {"fed": ("met", "已供数", "fed"), "planned": ("on-track", "计划中", "planned"),
                "gap": ("at-risk", "无来源", "no system feeds it")}
BURN_TITLES = {key: f"{zh} {en}" for key, zh, en in MILESTONES}

CSS = """
body{font-family:system-ui,'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:24px auto;max-width:1200px;
color:#24292f;padding:0 16px;line-height:1.45}
h1{font-size:22px;margin-bottom:4px}
h2{font-size:18px;border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:32px}
.meta{color:#57606a;font-size:13px}
table{border-collapse:collapse;font-size:12px;margin:8px 0;width:100%}
th,td{border:1px solid #d0d7de;padding:4px 6px;text-align:left;vertical-align:top}th{background:#f6f8fa}
.v{display:inline-block;border-radius:10px;padding:0 7px;font-size:11px;white-space:nowrap}
.v-met{background:#dafbe1;color:#116329}.v-late{background:#ffebe9;color:#a40e26}
.v-at-risk{background:#fff8c5;color:#7d4e00}.v-on-track{background:#ddf4ff;color:#0550ae}
.v-n\\/a,.v-na{background:#eaeef2;color:#57606a}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;
min-width:160px}.card .n{font-size:20px;font-weight:600}.card .l{font-size:12px;color:#57606a}
.grid{display:flex;flex-wrap:wrap;gap:16px}.chart{max-width:100%;height:auto}
.small{font-size:11px;color:#57606a}
"""


def _verdict(verdict: str) -> str:
    zh, en = VERDICT[verdict]
    css = "na" if verdict == "n/a" else verdict
    return f'<span class="v v-{css}">{zh} {en}</span>'


def _cell(score: Score) -> str:
    if not score.total:
        return '<td class="small">—</td>'
    deadline = f'<br><span class="small">by {escape(score.deadline)}</span>' if score.deadline else ""
    return f"<td>{score.done}/{score.total} {_verdict(score.verdict)}{deadline}</td>"


def _units(units: list[Unit], first: str) -> str:
    head = "".join(f"<th>{zh}<br>{en}</th>" for _, zh, en in MILESTONES)
    rows = []
    for unit in units:
        name = f"{escape(unit.name)}<br><code>{escape(unit.id)}</code>"
        cells = "".join(_cell(unit.scores[key]) for key, _, _ in MILESTONES)
        rows.append(f"<tr><td>{name}</td>{cells}<td>{_verdict(unit.verdict)}</td></tr>")
    return f"<table><tr><th>{first}</th>{head}<th>总体<br>Overall</th></tr>{''.join(rows)}</table>"


def _d(text: str) -> date:
    return date.fromisoformat(text[:10])


def _burndowns(report: Report) -> str:
    charts = []
    for burn in report.burndown:
        if not burn.total:
            continue
        days = [_d(d) for d, _ in burn.planned + burn.actual] + [_d(d) for d in burn.deadlines]
        first, last = min(days), max(days)
        series = [Series("计划 planned", "#0969da", [(_d(d), n) for d, n in burn.planned], dashed=True)]
        if burn.actual:
            series.append(Series("实际 actual", "#1a7f37", [(_d(d), n) for d, n in burn.actual]))
        charts.append(line_chart(f"{BURN_TITLES[burn.milestone]} — {burn.total}", series, first, last, burn.total,
                                 [(_d(d), d) for d in burn.deadlines]))
    return f'<div class="grid">{"".join(charts)}</div>' if charts else "<p>Nothing to burn down.</p>"


def _gantt(report: Report) -> str:
    if not report.gantt:
        return "<p>Nothing remains 无剩余工作.</p>"
    bars = [Bar(row.department, _d(row.start), _d(row.finish), _d(row.deadline) if row.deadline else None,
                "#cf222e" if row.late else "#0969da",
                f"{row.steps} steps{' 逾期 late' if row.late else ''}") for row in report.gantt]
    first = min(b.start for b in bars)
    last = max([b.finish for b in bars] + [b.marker for b in bars if b.marker])
    return gantt("剩余工作 Remaining work (red tick: first deadline 最早期限)", bars, first, last)


def _share(report: Report) -> str:
    share = report.share
    bars = progress_bars("共享平台汇聚比例 Share of systems aggregated on the sharing platform", [
        ("已汇聚 Aggregated", share.done_ratio, share.planned_ratio,
         f"{share.done}/{share.active} {share.done_ratio:.0%}"),
        ("计划汇聚 Planned", 0.0, share.planned_ratio,
         f"{share.planned}/{share.active} {share.planned_ratio:.0%}"),
        (f"按期 By {share.deadline}", 0.0, share.planned_by_deadline / share.active if share.active else 0.0,
         f"{share.planned_by_deadline}/{share.active}"),
    ], target=share.target)
    verdict = share.verdict
    rows = []
    for feed in report.themes:
        systems = ", ".join(f"<code>{escape(s)}</code>{' ✅' if s in feed.done else ''}" for s in feed.systems)
        css, zh, en = THEME_STATUS[feed.status]
        rows.append(f"<tr><td>{escape(feed.label)} <code>{escape(feed.theme)}</code></td>"
                    f'<td><span class="v v-{css}">{zh} {en}</span></td><td>{systems or "—"}</td></tr>')
    return (f"<p>目标 Target: {share.target:.0%} by {escape(share.deadline)} {_verdict(verdict)}. "
            "Counted: active, unclassified systems 在用非涉密系统; excluded and zombie systems are not counted.</p>"
            f"{bars}<h3>专题库 Thematic data sets</h3><table><tr><th>专题 Theme</th><th>状态 Status</th>"
            f"<th>数据来源系统 Systems feeding it</th></tr>{''.join(rows)}</table>")


def _milestone_bars(report: Report) -> str:
    rows = []
    for key, zh, en in MILESTONES:
        score = report.province.scores[key]
        if score.total:
            ratio = score.done / score.total
            rows.append((f"{zh} {en}", ratio, ratio, f"{score.done}/{score.total}"))
    return progress_bars("各项完成情况 Milestones, province-wide", rows, width=720, left=300)


def _cards(report: Report) -> str:
    cards = []
    for key, zh, en in MILESTONES:
        score = report.province.scores[key]
        cards.append(f'<div class="card"><div class="l">{zh} {en}</div><div class="n">{score.done}/{score.total}'
                     f"</div>{_verdict(score.verdict)}</div>")
    return f'<div class="cards">{"".join(cards)}</div>'


def _excluded(report: Report) -> str:
    if not report.excluded:
        return "<p>None 无.</p>"
    rows = "".join(f"<tr><td><code>{escape(e.system)}</code></td><td>{escape(e.name or '')}</td>"
                   f"<td>{escape(e.reason)}</td></tr>" for e in report.excluded)
    return f"<table><tr><th>系统 System</th><th>名称 Name</th><th>原因 Reason</th></tr>{rows}</table>"


def _retained(report: Report) -> str:
    if not report.retained_networks:
        return "<p>None 无.</p>"
    rows = "".join(f"<tr><td><code>{escape(n['network'])}</code></td><td>{escape(n['by'])}</td>"
                   f"<td>{escape(n['reason'])}</td></tr>" for n in report.retained_networks)
    return f"<table><tr><th>专网 Network</th><th>批准 Approved by</th><th>理由 Reason</th></tr>{rows}</table>"


def render_html(report: Report) -> str:
    journal = escape(report.journal) if report.journal else "无 none — progress as planned, nothing counted as done"
    body = [
        "<h1>政务信息系统整合共享进度报告<br>Integration and sharing scorecard</h1>",
        f'<p class="meta">计划 Plans: <code>{escape(report.plans)}</code> · 日志 Journal: {journal} · '
        f"排期起点 Schedule from: {escape(report.start)}</p>",
        "<h2>全省概况 Province overview</h2>", _cards(report), _milestone_bars(report),
        "<h2>共享平台 Sharing platform</h2>", _share(report),
        "<h2>燃尽图 Burn-down per milestone</h2>", _burndowns(report),
        "<h2>剩余工作 Gantt of what remains</h2>", _gantt(report),
        "<h2>各市 Cities</h2>", _units(report.cities, "城市 City"),
        "<h2>各部门 Departments</h2>", _units(report.departments, "部门 Department"),
        "<h2>不纳入整合的系统 Excluded systems</h2>",
        "<p>POLICY rule 2: listed for the ledger, never counted as gaps 不计为缺口.</p>", _excluded(report),
        "<h2>保留专网 Retained private networks</h2>", _retained(report),
    ]
    return ("<!DOCTYPE html>\n"
            '<html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>整合共享进度报告 Integration and sharing scorecard</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
