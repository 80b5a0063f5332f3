"""Small inline SVG charts for the HTML report: no scripts, no fonts, no network needed to view them.

Each function returns one `<svg>` element as text; every label goes through `escape`.
Dates are plotted as day numbers (`date.toordinal()`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from html import escape

FONT = "font-family=\"system-ui, 'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif\""
GRID = "#d0d7de"
INK = "#24292f"
MUTED = "#57606a"


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: list[tuple[date, float]]
    dashed: bool = False


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _axis_dates(first: date, last: date, count: int = 6) -> list[date]:
    span = max(1, last.toordinal() - first.toordinal())
    return [date.fromordinal(first.toordinal() + round(span * i / (count - 1))) for i in range(count)]


def line_chart(title: str, series: list[Series], first: date, last: date, y_max: float,
               markers: list[tuple[date, str]], width: int = 560, height: int = 240) -> str:
    """Step lines (a burn-down) over dates, with vertical deadline markers."""
    left, right, top, bottom = 44, 16, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    x0, x1 = first.toordinal(), max(last.toordinal(), first.toordinal() + 1)
    y_top = max(y_max, 1)

    def x(day: date) -> float:
        return left + plot_w * (min(max(day.toordinal(), x0), x1) - x0) / (x1 - x0)

    def y(value: float) -> float:
        return top + plot_h * (1 - value / y_top)

    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" {FONT} font-size="11">',
             f"<title>{escape(title)}</title>",
             f'<text x="{left}" y="16" font-size="13" font-weight="600" fill="{INK}">{escape(title)}</text>']
    ticks = sorted({round(y_top * i / 4) for i in range(5)}) if y_top == int(y_top) else \
        [y_top * i / 4 for i in range(5)]
    for value in ticks:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                     f'stroke="{GRID}" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end" fill="{MUTED}">'
                     f"{_fmt(value)}</text>")
    ticks = _axis_dates(first, date.fromordinal(x1))
    for index, day in enumerate(ticks):
        anchor = "start" if index == 0 else ("end" if index == len(ticks) - 1 else "middle")
        parts.append(f'<text x="{x(day):.1f}" y="{height - bottom + 16}" text-anchor="{anchor}" fill="{MUTED}">'
                     f"{day.isoformat()}</text>")
    for day, label in markers:
        if x0 <= day.toordinal() <= x1:
            parts.append(f'<line x1="{x(day):.1f}" x2="{x(day):.1f}" y1="{top}" y2="{top + plot_h}" '
                         f'stroke="#cf222e" stroke-width="1" stroke-dasharray="4 3"/>')
            parts.append(f'<text x="{x(day) - 3:.1f}" y="{top + 10}" text-anchor="end" fill="#cf222e" '
                         f'font-size="10">{escape(label)}</text>')
    for index, s in enumerate(series):
        if not s.points:
            continue
        path = []
        previous: float | None = None
        for day, value in s.points:
            if previous is None:
                path.append(f"M{x(day):.1f},{y(value):.1f}")
            else:
                path.append(f"H{x(day):.1f}V{y(value):.1f}")
            previous = value
        path.append(f"H{x(date.fromordinal(x1)):.1f}")
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(f'<path d="{"".join(path)}" fill="none" stroke="{s.color}" stroke-width="2"{dash}>'
                     f"<title>{escape(s.label)}</title></path>")
        lx = left + 8 + index * 150
        parts.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{height - 8}" y2="{height - 8}" stroke="{s.color}" '
                     f'stroke-width="2"{dash}/>')
        parts.append(f'<text x="{lx + 22}" y="{height - 4}" fill="{INK}">{escape(s.label)}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="{GRID}"/>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Bar:
    label: str
    start: date
    finish: date
    marker: date | None
    color: str
    note: str = ""


def gantt(title: str, bars: list[Bar], first: date, last: date, width: int = 900, row: int = 22) -> str:
    """One bar per row from start to finish, with a deadline tick on each row."""
    left, right, top, bottom = 170, 110, 30, 28
    height = top + bottom + row * max(1, len(bars))
    plot_w = width - left - right
    x0, x1 = first.toordinal(), max(last.toordinal(), first.toordinal() + 1)

    def x(day: date) -> float:
        return left + plot_w * (min(max(day.toordinal(), x0), x1) - x0) / (x1 - x0)

    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" {FONT} font-size="11">',
             f"<title>{escape(title)}</title>",
             f'<text x="0" y="16" font-size="13" font-weight="600" fill="{INK}">{escape(title)}</text>']
    ticks = _axis_dates(first, date.fromordinal(x1), 7)
    for index, day in enumerate(ticks):
        anchor = "start" if index == 0 else ("end" if index == len(ticks) - 1 else "middle")
        parts.append(f'<line x1="{x(day):.1f}" x2="{x(day):.1f}" y1="{top}" y2="{height - bottom}" stroke="{GRID}"/>')
        parts.append(f'<text x="{x(day):.1f}" y="{height - bottom + 16}" text-anchor="{anchor}" fill="{MUTED}">'
                     f"{day.isoformat()}</text>")
    for index, bar in enumerate(bars):
        y = top + index * row
        x_start, x_end = x(bar.start), x(bar.finish)
        parts.append(f'<text x="{left - 8}" y="{y + row * 0.68:.1f}" text-anchor="end" fill="{INK}">'
                     f"{escape(bar.label)}</text>")
        parts.append(f'<rect x="{x_start:.1f}" y="{y + 4}" width="{max(2.0, x_end - x_start):.1f}" '
                     f'height="{row - 8}" rx="3" fill="{bar.color}"><title>{escape(bar.label)}: '
                     f"{bar.start.isoformat()} – {bar.finish.isoformat()} {escape(bar.note)}</title></rect>")
        if bar.marker is not None and x0 <= bar.marker.toordinal() <= x1:
            parts.append(f'<line x1="{x(bar.marker):.1f}" x2="{x(bar.marker):.1f}" y1="{y + 1}" y2="{y + row - 1}" '
                         f'stroke="#cf222e" stroke-width="2"/>')
        if bar.note:
            parts.append(f'<text x="{width - right + 6}" y="{y + row * 0.68:.1f}" fill="{MUTED}">'
                         f"{escape(bar.note)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def progress_bars(title: str, rows: list[tuple[str, float, float, str]], target: float | None = None,
                  width: int = 560, row: int = 26, left: int = 210) -> str:
    """Horizontal bars of fractions 0..1: (label, done, planned, text); an optional target line."""
    right, top = 70, 28
    height = top + row * max(1, len(rows)) + 8
    plot_w = width - left - right
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" {FONT} font-size="11">',
             f"<title>{escape(title)}</title>",
             f'<text x="0" y="16" font-size="13" font-weight="600" fill="{INK}">{escape(title)}</text>']
    for index, (label, done, planned, text) in enumerate(rows):
        y = top + index * row
        parts.append(f'<text x="{left - 8}" y="{y + row * 0.65:.1f}" text-anchor="end" fill="{INK}">'
                     f"{escape(label)}</text>")
        parts.append(f'<rect x="{left}" y="{y + 4}" width="{plot_w}" height="{row - 8}" fill="#eaeef2" rx="3"/>')
        parts.append(f'<rect x="{left}" y="{y + 4}" width="{plot_w * min(1.0, planned):.1f}" height="{row - 8}" '
                     f'fill="#b6e3ff" rx="3"><title>planned 计划 {planned:.0%}</title></rect>')
        parts.append(f'<rect x="{left}" y="{y + 4}" width="{plot_w * min(1.0, done):.1f}" height="{row - 8}" '
                     f'fill="#1a7f37" rx="3"><title>done 完成 {done:.0%}</title></rect>')
        parts.append(f'<text x="{left + plot_w + 6}" y="{y + row * 0.65:.1f}" fill="{MUTED}">{escape(text)}</text>')
    if target is not None:
        tx = left + plot_w * target
        parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top}" y2="{height - 4}" stroke="#cf222e" '
                     f'stroke-width="2" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{tx + 4:.1f}" y="{top - 2}" fill="#cf222e">target 目标 {target:.0%}</text>')
    parts.append("</svg>")
    return "".join(parts)
