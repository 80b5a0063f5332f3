"""The loader: safe YAML, findings located at the exact line of the offending node, and no
input (however broken) that raises instead of reporting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from orchestrator.plans.loader import PlanLoader, PlansDirectoryError, load_plans
from tests.support import PLANS
from tests.support.plans import BROKEN, START, check, department, dump, write_plans

# Line numbers are in the comments on the right: the tests below assert them exactly.
HAND_WRITTEN = """\
version: 1                                   # 1
department:                                  # 2
  id: fj-lines                               # 3
  name: 行号测试                              # 4
  level: province                            # 5
  kind: agency                               # 6
datacenter:                                  # 7
  id: lines-dc                               # 8
  hosts: [h-one, h-two]                      # 9
target: provincial-cloud                     # 10
systems:                                     # 11
  - id: first                                # 12
    name: 第一                                # 13
    function: first system                   # 14
    scope: province                          # 15
    frequency: daily                         # 16
    approved_by: 省发改委                      # 17
    approved_on: 2012-05-01                  # 18
    funding_source: fiscal                   # 19
    classification: unclassified             # 20
    status: active                           # 21
    host: h-three                            # 22  unknown-reference: not a host
    data: {path: /srv/first, size_gb: 10}    # 23
    share: false                             # 24
    depends_on:                              # 25
      - fj-lines/second                      # 26
      - fj-nowhere/x                         # 27  unknown-reference
  - id: second                               # 28
    name: 第二                                # 29
    function: ""                             # 30  census-incomplete
    scope: province                          # 31
    frequency: daily                         # 32
    approved_by: 省发改委                      # 33
    approved_on: 2012-05-01                  # 34
    funding_source: fiscal                   # 35
    classification: unclassified             # 36
    status: active                           # 37
    host: h-one                              # 38
    data:                                    # 39
      path: /srv/second                      # 40
      size_gb: -5                            # 41  schema: negative
    share: false                             # 42
private_networks:                            # 43
  - id: lines-net                            # 44
    cidr: 172.20.0.0/24                      # 45
    systems: [first, second]                 # 46
    migrate_to: retain                       # 47  retain-approval (the item, line 44)
"""


def located(root: Path) -> dict[tuple[str, int], str]:
    _, result = check(root, start=START)
    return {(f.rule, f.line): f.message for f in result.findings}


def test_hand_written_yaml_lines(tmp_path: Path) -> None:
    (tmp_path / "fj-lines.yaml").write_text(HAND_WRITTEN, encoding="utf-8")
    # The negative size makes the file invalid: fix it in a copy to see the policy findings.
    found = located(tmp_path)
    assert found.keys() == {("schema", 41)}
    assert "size_gb" in found[("schema", 41)]

    (tmp_path / "fj-lines.yaml").write_text(HAND_WRITTEN.replace("size_gb: -5 ", "size_gb: 5  "), encoding="utf-8")
    found = located(tmp_path)
    assert set(found) == {
        ("unknown-reference", 22),
        ("unknown-reference", 27),
        ("census-incomplete", 30),
        ("retain-approval", 44),
    }, found


def test_missing_field_points_at_its_parent_node(tmp_path: Path) -> None:
    text = HAND_WRITTEN.replace("    share: false                             # 42\n", "")
    (tmp_path / "fj-lines.yaml").write_text(text, encoding="utf-8")
    found = located(tmp_path)
    # systems[1].share missing: the deepest node that exists is the item at line 28.
    assert found[("schema", 28)] == "systems[1].share: required field is missing"


def test_unknown_field_points_at_its_key(tmp_path: Path) -> None:
    text = HAND_WRITTEN.replace("  kind: agency ", "  knd: agency  ")
    (tmp_path / "fj-lines.yaml").write_text(text, encoding="utf-8")
    found = located(tmp_path)
    assert "department.knd: unknown field" in found[("schema", 6)]
    assert found[("schema", 2)] == "department.kind: required field is missing"


def test_parse_error_line(tmp_path: Path) -> None:
    text = HAND_WRITTEN.replace("    status: active                           # 37", "    status: [active")
    (tmp_path / "fj-lines.yaml").write_text(text, encoding="utf-8")
    ((rule, line),) = located(tmp_path)
    assert rule == "schema" and 37 <= line <= 38


def test_duplicate_key_is_reported_at_the_second_occurrence(tmp_path: Path) -> None:
    text = HAND_WRITTEN.replace("    scope: province                          # 31\n",
                                "    scope: province                          # 31\n    scope: public\n")
    text = text.replace("size_gb: -5 ", "size_gb: 5  ")
    (tmp_path / "fj-lines.yaml").write_text(text, encoding="utf-8")
    found = located(tmp_path)
    assert found[("schema", 32)] == ("duplicate key 'scope' (first on line 31): YAML would keep only the last "
                                     "value; remove one")


def test_duplicate_key_line_lookup_uses_the_key_in_effect(tmp_path: Path) -> None:
    """PyYAML keeps the last of two keys: a finding about that field points there."""
    plan = dump(department())
    plan = plan.replace("target: provincial-cloud\n", "target: provincial-cloud\ntarget: municipal-dc\n")
    (tmp_path / "fj-test.yaml").write_text(plan, encoding="utf-8")
    _, result = check(tmp_path)
    lines = {f.rule: f.line for f in result.findings}
    second = plan.splitlines().index("target: municipal-dc") + 1
    assert lines == {"schema": second, "target-policy": second}


def test_plan_loader_builds_what_the_safe_loader_builds() -> None:
    text = (PLANS / "fj-aic.yaml").read_text("utf-8")
    extra = "\nanchors: {a: &x [1, 2.5, null, true, 2017-01-01], b: *x, merged: {<<: {k: v}, z: 1}}\n"
    odd = "a: !!binary aGk=\nb: !!set {x}\nc: !!str 1\nd: !!float 1\ne: !!omap [x: 1]\n"
    for document in (text, text + extra, odd):
        assert yaml.load(document, Loader=PlanLoader) == yaml.load(document, Loader=yaml.SafeLoader)


@pytest.mark.parametrize("document", [
    "x: !!python/object/apply:os.system [true]\n", "x: !!map scalar\n", "x: !!seq scalar\n", "x: !!str {a: 1}\n",
])
def test_plan_loader_refuses_what_the_safe_loader_refuses(document: str) -> None:
    with pytest.raises(yaml.YAMLError):
        yaml.load(document, Loader=yaml.SafeLoader)
    with pytest.raises(yaml.YAMLError):
        yaml.load(document, Loader=PlanLoader)


# --- directories and files ------------------------------------------------------------------


def test_yml_extension_is_loaded(tmp_path: Path) -> None:
    write_plans(tmp_path, department())
    (tmp_path / "fj-test.yaml").rename(tmp_path / "fj-test.yml")
    (tmp_path / "infra.yaml").rename(tmp_path / "infra.yml")
    plans, result = check(tmp_path)
    assert list(plans.departments) == ["fj-test"] and plans.infra is not None
    assert result.findings == []


def test_hidden_and_other_files_are_ignored(tmp_path: Path) -> None:
    write_plans(tmp_path, department())
    (tmp_path / ".fj-test.yaml.swp").write_text("garbage", encoding="utf-8")
    (tmp_path / "README.md").write_text("# plans", encoding="utf-8")
    (tmp_path / "schema.json").write_text("{}", encoding="utf-8")
    assert check(tmp_path)[1].findings == []


def test_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(PlansDirectoryError):
        load_plans(tmp_path / "nope")
    with pytest.raises(PlansDirectoryError):
        load_plans(write_plans(tmp_path, department()) / "fj-test.yaml")  # a file, not a directory
    # A path the user cannot reach (here: through a file) names the path and the reason, no traceback.
    with pytest.raises(PlansDirectoryError, match=r"fj-test.yaml/plans: cannot reach the plans directory: Not a dir"):
        load_plans(tmp_path / "fj-test.yaml" / "plans")


def test_directory_without_plans(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no plans here", encoding="utf-8")
    _, result = check(tmp_path)
    (finding,) = result.findings
    assert finding.rule == "schema" and "no plan files" in finding.message and finding.file == str(tmp_path)


def test_directory_with_only_infra(tmp_path: Path) -> None:
    write_plans(tmp_path)
    _, result = check(tmp_path)
    assert [f.message for f in result.errors] == [f"no department plans in {tmp_path}, only infra.yaml"]


def write_raw(root: Path, name: str, content: bytes | str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path




@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_input_is_a_finding(tmp_path: Path, name: str) -> None:
    write_raw(tmp_path, "fj-x.yaml", BROKEN[name])
    write_plans(tmp_path)  # infra.yaml
    plans, result = check(tmp_path)
    assert "fj-x" not in plans.departments
    assert result.errors, f"{name}: no finding"
    assert all(f.file == str(tmp_path / "fj-x.yaml") for f in result.errors)
    assert all(f.line and f.line >= 1 for f in result.findings)
    assert all(f.format().startswith(f"{tmp_path / 'fj-x.yaml'}:") for f in result.findings)


def test_symlink_loop_and_directory_named_like_a_plan(tmp_path: Path) -> None:
    write_plans(tmp_path, department())
    os.symlink("fj-loop.yaml", tmp_path / "fj-loop.yaml")
    (tmp_path / "fj-dir.yaml").mkdir()
    os.mkfifo(tmp_path / "fj-fifo.yaml")  # must not block the loader
    plans, result = check(tmp_path)
    assert list(plans.departments) == ["fj-test"]
    by_file = {Path(f.file).name: f.message for f in result.findings}
    assert by_file.keys() == {"fj-loop.yaml", "fj-dir.yaml", "fj-fifo.yaml"}
    assert by_file["fj-loop.yaml"].startswith("cannot read")
    assert by_file["fj-dir.yaml"] == by_file["fj-fifo.yaml"] == "not a regular file"


def test_broken_infra_yaml(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][0]["depends_on"] = ["infra:provincial-cloud"]
    write_plans(tmp_path, plan, infra={"version": 1, "milestones": [{"id": "provincial-cloud", "ready": "soon"}]})
    _, result = check(tmp_path)
    rules = {(Path(f.file).name, f.rule) for f in result.findings}
    assert rules == {("infra.yaml", "schema"), ("fj-test.yaml", "unknown-reference")}
    assert any("no valid infra.yaml" in f.message for f in result.findings)


def test_two_infra_files(tmp_path: Path) -> None:
    write_plans(tmp_path, department())
    (tmp_path / "infra.yml").write_text((tmp_path / "infra.yaml").read_text("utf-8"), encoding="utf-8")
    _, result = check(tmp_path)
    assert [(Path(f.file).name, f.rule) for f in result.findings] == [("infra.yml", "duplicate-id")]


def test_absurd_window_far_in_the_future_is_a_finding_not_an_overflow(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][0]["cutover"] = {"window": "9999-12-30T23:00+08:00/PT6H"}
    _, result = check(write_plans(tmp_path, plan))
    (finding,) = result.errors
    assert finding.rule == "deadline" and "after the year 9999" in finding.message
    assert result.schedule is None


def test_string_version_and_dates(tmp_path: Path) -> None:
    plan = department()
    plan["version"] = "1"
    _, result = check(write_plans(tmp_path, plan))
    assert [f.message for f in result.findings] == ["version: only version 1 exists (got '1')"]
    assert result.findings[0].line == 1
