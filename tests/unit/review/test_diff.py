"""`fjmig diff`: a real git repository built here, one commit per kind of change a reviewer sees."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.support import PLANS

START = "2017-11-07"
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example", "-c", "commit.gpgsign=false"]

NEW_SYSTEM = """
  - id: ferry-booking
    name: 轮渡票务系统
    function: ferry ticket booking
    scope: public
    frequency: daily
    approved_by: 厦门市发改委
    approved_on: 2015-03-01
    funding_source: fiscal
    classification: unclassified
    status: active
    host: {host}
    data: {{path: /srv/ferry-booking, size_gb: 40, daily_change_gb: 0.5}}
    share: true
    themes: [transport, tourism]
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A", "migration_plans")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(PLANS, root / "migration_plans")
    git(root, "init", "-q", "-b", "main")
    commit(root, "base plans")
    return root


def fjmig_diff(repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               *args: str) -> tuple[int, str, str]:
    monkeypatch.chdir(repo)
    capsys.readouterr()
    status = main(["diff", *args, "--start", START])
    out, err = capsys.readouterr()
    return status, out, err


def first_host(plan: Path) -> str:
    text = plan.read_text(encoding="utf-8")
    hosts = text.split("hosts: [", 1)[1].split("]", 1)[0]
    return hosts.split(",")[0].strip()


def test_added_system(repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    plan = repo / "migration_plans" / "xm-transport.yaml"
    edit(plan, "\nsystems:\n", "\nsystems:\n" + NEW_SYSTEM.format(host=first_host(plan)).lstrip("\n"))
    commit(repo, "add the ferry booking system")
    status, out, _ = fjmig_diff(repo, monkeypatch, capsys, "HEAD~1", "HEAD")
    assert status == 0
    summary = out.splitlines()[0]
    assert summary.startswith("+1 system")
    assert "new error" not in summary
    assert "**`xm-transport/ferry-booking`** — ➕ added" in out
    assert "| themes | `[\"transport\", \"tourism\"]` |" in out
    assert "<details>" in out  # an added system has more fields than fit unfolded
    assert "| ➕ | `xm-transport/ferry-booking:share` |" in out  # its steps, in the schedule section
    assert "Slack to deadlines" not in out  # minutes of delay elsewhere are not a reviewer's concern
    assert 'class n' in out and "added" in out.split("```mermaid", 1)[1]


def test_added_dependency_and_graph(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    edit(repo / "migration_plans" / "fj-aic.yaml",
         "    depends_on: [fj-aic/registry]\n    cutover: {window: \"2017-12-01",
         "    depends_on: [fj-aic/registry, fj-aic/credit-publicity]\n    cutover: {window: \"2017-12-01")
    commit(repo, "case handling reads the credit publicity data")
    status, out, _ = fjmig_diff(repo, monkeypatch, capsys, "HEAD~1", "HEAD")
    assert status == 0
    assert "1 new dependency" in out.splitlines()[0]
    assert "| ➕ | `fj-aic/case-handling` | `fj-aic/credit-publicity` |" in out
    graph = out.split("```mermaid", 1)[1].split("```", 1)[0]
    ids = {line.split("[", 1)[1].strip('"]'): line.strip().split("[", 1)[0]
           for line in graph.splitlines() if '["' in line}
    assert f"{ids['fj-aic/credit-publicity']} ==>|new| {ids['fj-aic/case-handling']}" in graph
    assert "steps change wave" in out.splitlines()[0]
    assert "| `fj-aic/case-handling:cutover` |" in out


def test_cutover_window_change_shows_field_and_slack(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    edit(repo / "migration_plans" / "fj-aic.yaml", 'window: "2017-11-25T22:00+08:00/PT6H"',
         'window: "2018-01-10T22:00+08:00/PT6H"')
    commit(repo, "move the credit publicity cutover after new year")
    status, out, _ = fjmig_diff(repo, monkeypatch, capsys, "HEAD~1", "HEAD", "--fail-on", "warning")
    assert status == 1  # it introduces deadline warnings
    assert out.splitlines()[0] == "~1 changed, 3 new warnings"
    assert "| cutover.window | `2017-11-25T22:00+08:00/PT6H` | `2018-01-10T22:00+08:00/PT6H` |" in out
    assert "| `fj-aic` | 2017-12-31 | 30.0 d | -10.0 d | ⚠️ late |" in out
    assert "warning[deadline]: fj-aic/credit-publicity:cutover finishes 2018-01-10" in out
    # warnings do not fail an error gate
    assert fjmig_diff(repo, monkeypatch, capsys, "HEAD~1", "HEAD", "--fail-on", "error")[0] == 0


def test_policy_error_introduced_then_fixed(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    edit(repo / "migration_plans" / "fz-aic.yaml", "target: municipal-dc", "target: provincial-cloud")
    commit(repo, "fz-aic to the provincial cloud")
    status, out, _ = fjmig_diff(repo, monkeypatch, capsys, "HEAD~1", "HEAD", "--fail-on", "error")
    assert status == 1
    summary = out.splitlines()[0]
    assert summary.startswith("~1 changed") and "1 new error" in summary
    assert "error[target-policy]: a city department moves to its city's data center" in out
    assert "| target | `municipal-dc` | `provincial-cloud` |" in out
    status, out, _ = fjmig_diff(repo, monkeypatch, capsys, "HEAD", "HEAD~1", "--fail-on", "error")
    assert status == 0
    assert "1 finding fixed" in out.splitlines()[0]
    assert "### Fixed (1)" in out


def test_no_op_commit_and_moved_lines_say_nothing_changed(
        repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    edit(repo / "migration_plans" / "fz-aic.yaml", "target: municipal-dc", "target: provincial-cloud")
    commit(repo, "an error")
    commit(repo, "an empty commit")
    status, out, _ = fjmig_diff(repo, monkeypatch, capsys, "HEAD~1", "HEAD")
    assert status == 0
    assert out.splitlines()[0].startswith("No change to the migration plans between HEAD~1")
    assert "##" not in out
    # Comments above the error move its line; it is the same finding, not a new one.
    plan = repo / "migration_plans" / "fz-aic.yaml"
    plan.write_text("# reviewed\n# again\n" + plan.read_text(encoding="utf-8"), encoding="utf-8")
    status, out, _ = fjmig_diff(repo, monkeypatch, capsys, "HEAD", "--fail-on", "warning")
    assert status == 0
    assert out.splitlines()[0] == "No change to the migration plans between HEAD ({}) and the working tree.".format(
        git(repo, "rev-parse", "--short=8", "HEAD").strip())


def test_json_and_directories(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    shutil.copytree(repo / "migration_plans", other)
    (other / "fj-org.yaml").unlink()
    status, out, _ = fjmig_diff(repo, monkeypatch, capsys, "migration_plans", str(other), "--format", "json")
    assert status == 0
    data = json.loads(out)
    assert data["summary"].startswith("-1 department, -")
    removed = {e["id"] for e in data["entities"] if e["change"] == "removed"}
    assert "fj-org" in removed and any(r.startswith("fj-org/") for r in removed)
    assert data["empty"] is False


@pytest.mark.parametrize("args, message", [
    (["no-such-rev"], "unknown revision 'no-such-rev'"),
    (["HEAD", "--plans", "nowhere"], "nowhere does not exist at"),
])
def test_bad_revisions_are_clear_errors(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    status, _, err = fjmig_diff(repo, monkeypatch, capsys, *args)
    assert status == 1
    assert message in err and "Traceback" not in err


def test_not_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    status, _, err = fjmig_diff(plain, monkeypatch, capsys, "HEAD")
    assert status == 1
    assert "not inside a git repository" in err


def test_cli_subprocess_writes_output_file(repo: Path, tmp_path: Path) -> None:
    """The installed command, as CI runs it: the review lands in a file, the first line is the summary."""
    edit(repo / "migration_plans" / "fz-aic.yaml", "target: municipal-dc", "target: provincial-cloud")
    out = tmp_path / "review.md"
    done = subprocess.run(["fjmig", "diff", "HEAD", "--start", START, "--fail-on", "error", "-o", str(out)],
                          cwd=repo, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert out.read_text(encoding="utf-8").splitlines()[0] == "~1 changed, 1 new error"
