"""`fjmig validate`, `fjmig plan` and `fjmig schema`: exit codes, output formats, NO_COLOR, and no
traceback for any input — both in-process (`orchestrator.cli.main`) and as the installed command."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.plans import BROKEN, cli, department, write_plans

PLANS = ROOT / "migration_plans"
FINDING = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<severity>error|warning)\[(?P<rule>[a-z-]+)\]: (?P<msg>.+)$")


def fjmig(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("fjmig") or str(Path(sys.executable).parent / "fjmig")
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    full_env.update(env or {})
    return subprocess.run([exe, *argv], cwd=cwd or ROOT, env=full_env, capture_output=True, text=True,
                          timeout=300, check=False)


def broken_plan(root: Path) -> Path:
    plan = department()
    plan["systems"][0]["depends_on"] = ["fj-none/x"]
    return write_plans(root, plan)


# --- validate --------------------------------------------------------------------------------


def test_validate_shipped_plans_in_process() -> None:
    status, out, err = cli("validate", str(PLANS), "--start", "2017-11-07")
    assert status == 0, out + err
    assert out == ""
    assert err.strip() == "valid: 0 errors, 0 warnings in 16 department plans"


def test_validate_shipped_plans_subprocess() -> None:
    proc = fjmig("validate", "migration_plans", "--start", "2017-11-07")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid: 0 errors, 0 warnings in 16 department plans" in proc.stderr


def test_validate_invalid_names_file_as_given(tmp_path: Path) -> None:
    broken_plan(tmp_path / "plans")
    proc = fjmig("validate", "plans", "--start", "2017-11-07", cwd=tmp_path)
    assert proc.returncode == 1
    (line,) = proc.stdout.splitlines()
    match = FINDING.match(line)
    assert match, line
    assert match["file"] == "plans/fj-test.yaml"
    assert (match["severity"], match["rule"]) == ("error", "unknown-reference")
    text = (tmp_path / "plans" / "fj-test.yaml").read_text("utf-8").splitlines()
    assert text[int(match["line"]) - 1].strip() == "- fj-none/x"
    assert proc.stderr.strip() == "invalid: 1 error, 0 warnings in 1 department plan"
    assert "Traceback" not in proc.stderr


def test_validate_json(tmp_path: Path) -> None:
    root = broken_plan(tmp_path / "plans")
    status, out, _ = cli("validate", str(root), "--start", "2017-11-07", "--format", "json")
    assert status == 1
    data = json.loads(out)
    assert (data["valid"], data["errors"], data["warnings"], data["departments"]) == (False, 1, 0, ["fj-test"])
    (finding,) = data["findings"]
    assert finding["rule"] == "unknown-reference" and finding["file"] == str(root / "fj-test.yaml")
    assert finding["severity"] == "error" and isinstance(finding["line"], int)
    status, out, _ = cli("validate", str(PLANS), "--start", "2017-11-07", "--format", "json")
    assert status == 0 and json.loads(out)["valid"] is True


def test_validate_strict_turns_deadline_warnings_into_errors() -> None:
    status, out, _ = cli("validate", str(PLANS), "--start", "2018-07-01")
    assert status == 0 and "warning[deadline]" in out and "error[" not in out
    status, out, _ = cli("validate", str(PLANS), "--start", "2018-07-01", "--strict")
    assert status == 1 and "error[deadline]" in out
    assert all(FINDING.match(line) for line in out.splitlines())
    # line 100 once came out as an emoji (rich's `:100:`): the number must survive printing
    assert "migration_plans/fj-hrss.yaml:100: error[deadline]" in out


def test_validate_bandwidth_feeds_the_deadline_rule() -> None:
    status, out, _ = cli("validate", str(PLANS), "--start", "2017-11-07", "--bandwidth", "0.001")
    assert status == 0 and "warning[deadline]" in out


@pytest.mark.parametrize("argv", [
    ["validate", "/nonexistent/plans"],
    ["validate", str(PLANS), "--start", "2017-13-01"],
    ["validate", str(PLANS), "--start", "yesterday"],
    ["validate", str(PLANS), "--bandwidth", "0"],
    ["validate", str(PLANS), "--bandwidth", "-1"],
    ["validate", str(PLANS), "--bandwidth", "nan"],
    ["validate", str(PLANS), "--format", "xml"],
    ["plan", str(PLANS), "--parallel", "0"],
    ["plan", str(PLANS), "--format", "pdf"],
    ["validate", str(PLANS), "--no-such-option"],
    [],
])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    status, out, err = cli(*argv)
    assert status == 2, (out, err)
    assert "Traceback" not in err


def test_usage_error_subprocess() -> None:
    proc = fjmig("validate", "no-such-dir")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "fjmig validate: error: no-such-dir: no such plans directory"
    proc = fjmig("plan", "--start", "tomorrow")
    assert proc.returncode == 2 and "is not a date" in proc.stderr


# --- plan --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "mermaid", "dot"])
def test_plan_formats(fmt: str) -> None:
    status, out, err = cli("plan", str(PLANS), "--start", "2017-11-07", "--format", fmt)
    assert status == 0, err
    assert err == ""
    first = {"text": "Wave 1", "json": "{", "markdown": "# Migration schedule", "mermaid": "gantt",
             "dot": "digraph migration {"}[fmt]
    assert out.splitlines()[0] == first


def test_plan_parallel_and_bandwidth_change_the_schedule() -> None:
    def makespan(*extra: str) -> float:
        status, out, _ = cli("plan", str(PLANS), "--start", "2017-11-07", "--format", "json", *extra)
        assert status == 0
        return json.loads(out)["summary"]["makespan_hours"]

    data = json.loads(cli("plan", str(PLANS), "--start", "2017-11-07", "--format", "json", "--parallel", "2")[1])
    assert data["summary"]["parallel"] == 2
    assert makespan("--parallel", "1", "--bandwidth", "0.05") > makespan()


def test_plan_output_file(tmp_path: Path) -> None:
    target = tmp_path / "schedule.md"
    status, out, _ = cli("plan", str(PLANS), "--start", "2017-11-07", "--format", "markdown", "-o", str(target))
    assert status == 0 and out == ""
    assert target.read_text("utf-8").startswith("# Migration schedule")
    assert [p.name for p in tmp_path.iterdir()] == ["schedule.md"]  # no temporary file left behind
    status, _, err = cli("plan", str(PLANS), "--start", "2017-11-07", "-o", str(tmp_path / "missing" / "x.txt"))
    assert status == 1 and "cannot write" in err


def test_plan_refuses_invalid_plans(tmp_path: Path) -> None:
    root = broken_plan(tmp_path / "plans")
    proc = fjmig("plan", str(root), "--start", "2017-11-07")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "error[unknown-reference]" in proc.stderr and "no schedule: invalid" in proc.stderr


def test_plan_warns_on_stderr_and_still_plans() -> None:
    status, out, err = cli("plan", str(PLANS), "--start", "2018-07-01", "--format", "json")
    assert status == 0 and json.loads(out)["summary"]["late_steps"] > 0
    assert "warnings (run 'fjmig validate' for them)" in err


# --- colour ------------------------------------------------------------------------------------


def test_no_color_is_respected(tmp_path: Path) -> None:
    broken_plan(tmp_path / "plans")
    coloured = fjmig("validate", "plans", "--start", "2017-11-07", cwd=tmp_path, env={"FORCE_COLOR": "1"})
    assert "\x1b[" in coloured.stdout  # the check below can fail: colour is on without NO_COLOR
    plain = fjmig("validate", "plans", "--start", "2017-11-07", cwd=tmp_path,
                  env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[" not in plain.stdout + plain.stderr
    assert plain.returncode == coloured.returncode == 1
    assert FINDING.match(plain.stdout.strip())


# --- broken input: a finding, exit 1, never a traceback --------------------------------------


def test_every_broken_input_at_once_subprocess(tmp_path: Path) -> None:
    root = tmp_path / "plans"
    write_plans(root, department())
    names = []
    for index, content in enumerate(BROKEN.values()):
        name = f"fj-broken{index:02d}.yaml"
        names.append(name)
        (root / name).write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    os.symlink("fj-loop.yaml", root / "fj-loop.yaml")
    (root / "fj-dir.yaml").mkdir()
    for command in ("validate", "plan"):
        proc = fjmig(command, "plans", "--start", "2017-11-07", cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        output = proc.stdout if command == "validate" else proc.stderr
        files = {m["file"] for m in map(FINDING.match, output.splitlines()) if m}
        assert files >= {f"plans/{n}" for n in [*names, "fj-loop.yaml", "fj-dir.yaml"]}


@pytest.mark.parametrize("content", ["", "- a list\n", "\x00\x01\x02binary"])
def test_directory_of_only_broken_plans_in_process(tmp_path: Path, content: str) -> None:
    (tmp_path / "fj-x.yaml").write_text(content, encoding="utf-8")
    for command in ("validate", "plan"):
        status, out, err = cli(command, str(tmp_path))
        assert status == 1 and "Traceback" not in err
        assert f"{tmp_path / 'fj-x.yaml'}:1: error[schema]: " in out + err


def test_empty_directory(tmp_path: Path) -> None:
    status, out, _err = cli("validate", str(tmp_path))
    assert status == 1
    assert out.strip() == f"{tmp_path}:1: error[schema]: no plan files (*.yaml) in {tmp_path}"


# --- schema ------------------------------------------------------------------------------------


def test_published_schemas_are_current() -> None:
    """Fails when migration_plans/schema.json or infra.schema.json lags behind the model."""
    status, _out, err = cli("schema", str(PLANS), "--check")
    assert status == 0, err


def test_schema_check_detects_a_stale_schema(plans_copy: Path) -> None:
    schema = json.loads((plans_copy / "infra.schema.json").read_text("utf-8"))
    schema["title"] = "old"
    (plans_copy / "infra.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    status, _, err = cli("schema", str(plans_copy), "--check")
    assert status == 1 and "infra.schema.json" in err and "schema.json," not in err
    (plans_copy / "schema.json").unlink()
    status, _, err = cli("schema", str(plans_copy), "--check")
    assert status == 1 and "schema.json, infra.schema.json" in err
    assert cli("schema", str(plans_copy), "--write")[0] == 0
    assert cli("schema", str(plans_copy), "--check")[0] == 0
    assert (plans_copy / "schema.json").read_bytes() == (PLANS / "schema.json").read_bytes()


def test_schema_prints_the_department_schema() -> None:
    status, out, _ = cli("schema")
    assert status == 0
    data = json.loads(out)
    assert data["title"] == "fjmig department migration plan, version 1"
    assert data["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("argv", [["--bandwidth", "1e-300"], ["--start", "9999-12-31"]])
def test_schedules_beyond_the_calendar_are_findings(argv: list[str]) -> None:
    for command in ("validate", "plan"):
        status, out, err = cli(command, str(PLANS), *argv)
        assert status == 1 and "Traceback" not in err
        assert "error[deadline]: " in out + err and "would finish after the year 9999" in out + err
