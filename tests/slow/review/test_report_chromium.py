"""The HTML report renders in a real headless Chromium without console errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render_in_chromium(page: Path, workdir: Path) -> tuple[str, list[str], Path]:
    """Load the page in headless Chromium: its DOM, console lines from the log, and a screenshot."""
    binary = chromium()
    if binary is None:
        pytest.skip("chromium is not installed (scripts/setup.sh installs it)")
    common = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr",
              "--v=0", f"--user-data-dir={workdir / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    shot = workdir / "report.png"
    done = subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return dom.stdout, console, shot


def test_html_renders_in_chromium_without_console_errors(journal_html: Path, tmp_path: Path) -> None:
    dom, console, shot = render_in_chromium(journal_html, tmp_path)
    assert console == []
    assert dom.count("<svg") == 8 and "系统迁移 Systems moved" in dom
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The check itself works: a page with a script error is caught.
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><svg></svg><script>missing()</script></body></html>",
                   encoding="utf-8")
    _, console, _ = render_in_chromium(bad, tmp_path / "bad")
    assert any("Uncaught ReferenceError" in line for line in console)
