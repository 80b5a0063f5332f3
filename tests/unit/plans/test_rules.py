"""Each rule of PLAN_FORMAT.md: one plan that breaks it, and one near miss that must pass."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.support import PLANS
from tests.support.plans import INFRA, check, department, rules, system, unique_hosts, write_plans


def only(result: Any, rule: str, severity: str = "error") -> list[Any]:
    """The findings of `rule`, asserting that nothing else was reported."""
    found = [f for f in result.findings if f.rule == rule and f.severity == severity]
    others = [f.format() for f in result.findings if f not in found]
    assert found, f"no {severity}[{rule}] in {[f.format() for f in result.findings]}"
    assert not others, others
    return found


def clean(result: Any) -> None:
    assert [f.format() for f in result.findings] == []


def two_departments(tmp_path: Path, a: dict[str, Any], b: dict[str, Any], **kw: Any) -> Path:
    return write_plans(tmp_path / "plans", unique_hosts(a), unique_hosts(b), **kw)


# --- the shipped plans ---------------------------------------------------------------------


def test_shipped_plans_have_no_findings_at_the_reference_start() -> None:
    plans, result = check(PLANS, start=date(2017, 11, 7))
    assert len(plans.departments) == 16
    assert result.errors == [] and result.warnings == []
    assert result.schedule is not None


def test_factory_plan_is_clean(tmp_path: Path) -> None:
    clean(check(write_plans(tmp_path, department()))[1])


# --- schema ----------------------------------------------------------------------------------


def test_schema_missing_required_field(tmp_path: Path) -> None:
    plan = department()
    del plan["target"]
    (finding,) = only(check(write_plans(tmp_path, plan))[1], "schema")
    assert finding.message == "target: required field is missing"


def test_schema_near_miss_optional_fields_may_be_left_out(tmp_path: Path) -> None:
    plan = department()
    for key in ("owner", "parent", "funding", "city"):
        del plan["department"][key]
    del plan["private_networks"]
    del plan["systems"][0]["data"]["daily_change_gb"]
    clean(check(write_plans(tmp_path, plan))[1])


@pytest.mark.parametrize(("change", "expected"), [
    (lambda p: p.update(version=2), "version: only version 1 exists (got 2)"),
    (lambda p: p.update(version="1"), "version: only version 1 exists (got '1')"),
    (lambda p: p["systems"][0].update(id="Alpha"), "systems[0].id: 'Alpha' is not a valid id"),
    (lambda p: p["systems"][0].update(status="retired"), "systems[0].status: Input should be 'active' or 'zombie'"),
    (lambda p: p["systems"][0]["data"].update(size_gb=-1), "systems[0].data.size_gb: Input should be greater"),
    (lambda p: p["systems"][0]["data"].update(path="/srv/../etc"), "must not contain '.' or '..'"),
    (lambda p: p["systems"][0].update(colour="red"), "systems[0].colour: unknown field"),
    (lambda p: p["department"].update(funding="full"), "funding applies to institutions only"),
    (lambda p: p["systems"][0].update(cutover={"window": "next friday"}), "systems[0].cutover.window"),
    (lambda p: p["systems"][0].update(cutover={"window": "2017-12-09T22:00/PT6H"}), "needs a UTC offset"),
    (lambda p: p["systems"][0].update(cutover={"window": "2017-12-09T22:00+08:00/PT0H"}), "ends before it starts"),
])
def test_schema_wrong_values(tmp_path: Path, change: Any, expected: str) -> None:
    plan = department()
    change(plan)
    findings = only(check(write_plans(tmp_path, plan))[1], "schema")
    assert any(expected in f.message for f in findings), [f.message for f in findings]


def test_schema_near_miss_window_forms_and_quoted_dates(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][0]["cutover"] = {"window": "2017-12-09T22:00+08:00/2017-12-10T04:00+08:00", "approval": True}
    plan["systems"][1]["cutover"] = {"window": "2017-12-10T14:00Z/P1DT2H30M"}
    plan["systems"][1]["approved_on"] = "2012-05-01"  # a quoted date is still a date
    plan["department"]["deadline"] = "2018-05-31"
    clean(check(write_plans(tmp_path, plan))[1])


def test_schema_file_name_must_match_department_id(tmp_path: Path) -> None:
    write_plans(tmp_path, department("fj-test"))
    (tmp_path / "fj-test.yaml").rename(tmp_path / "fj-other.yaml")
    (finding,) = only(check(tmp_path)[1], "schema")
    assert "name the file fj-test.yaml" in finding.message
    assert finding.file.endswith("fj-other.yaml")


def test_schema_yaml_that_does_not_parse(tmp_path: Path) -> None:
    write_plans(tmp_path, department())
    (tmp_path / "fj-broken.yaml").write_text("version: 1\ndepartment: [unclosed\n", encoding="utf-8")
    (finding,) = only(check(tmp_path)[1], "schema")
    assert finding.message.startswith("YAML does not parse")
    assert finding.file.endswith("fj-broken.yaml")


# --- duplicate-id --------------------------------------------------------------------------


def test_duplicate_system_id(tmp_path: Path) -> None:
    plan = department()
    plan["systems"].append(system("alpha"))
    (finding,) = only(check(write_plans(tmp_path, plan))[1], "duplicate-id")
    assert finding.path == ("systems", 2, "id")


def test_duplicate_network_id(tmp_path: Path) -> None:
    plan = department()
    plan["private_networks"].append({**plan["private_networks"][0], "cidr": "172.21.0.0/24", "systems": []})
    (finding,) = only(check(write_plans(tmp_path, plan))[1], "duplicate-id")
    assert "private network id 'fjtest-net' is used twice" in finding.message


def test_duplicate_department_in_yaml_and_yml(tmp_path: Path) -> None:
    write_plans(tmp_path, department())
    (tmp_path / "fj-test.yml").write_text((tmp_path / "fj-test.yaml").read_text("utf-8"), encoding="utf-8")
    (finding,) = only(check(tmp_path)[1], "duplicate-id")
    assert finding.file.endswith("fj-test.yml") and "also defined in" in finding.message


def test_duplicate_host_across_departments(tmp_path: Path) -> None:
    write_plans(tmp_path, department("fj-aaa"), department("fj-bbb"))  # both have h-app and h-db
    findings = only(check(tmp_path)[1], "duplicate-id")
    assert {f.file.rsplit("/", 1)[1] for f in findings} == {"fj-bbb.yaml"}


def test_duplicate_id_near_miss_same_system_id_in_two_departments(tmp_path: Path) -> None:
    clean(check(two_departments(tmp_path, department("fj-aaa"), department("fj-bbb")))[1])


def test_duplicate_milestone_id(tmp_path: Path) -> None:
    infra = {"version": 1, "milestones": [*INFRA["milestones"], {"id": "provincial-cloud", "ready": False}]}
    (finding,) = only(check(write_plans(tmp_path, department(), infra=infra))[1], "duplicate-id")
    assert finding.file.endswith("infra.yaml") and finding.line == 8  # the third "- id:" item


# --- unknown-reference ---------------------------------------------------------------------


@pytest.mark.parametrize(("change", "expected", "path"), [
    (lambda p: p["systems"][0].update(depends_on=["fj-none/alpha"]), "names no system",
     ("systems", 0, "depends_on", 0)),
    (lambda p: p["systems"][0].update(depends_on=["beta"]), "e.g. fj-test/beta", ("systems", 0, "depends_on", 0)),
    (lambda p: p["systems"][0].update(depends_on=["infra:moon-base"]), "not a milestone in infra.yaml",
     ("systems", 0, "depends_on", 0)),
    (lambda p: p["department"].update(parent="fj-nobody"), "parent 'fj-nobody'", ("department", "parent")),
    (lambda p: p["systems"][1].update(host="h-nowhere"), "host 'h-nowhere' is not in", ("systems", 1, "host")),
    (lambda p: p["private_networks"][0].update(systems=["alpha", "gamma"]), "lists 'gamma'",
     ("private_networks", 0, "systems", 1)),
    (lambda p: p["department"].update(level="city", city="beijing"), "city 'beijing' is not one of",
     ("department", "city")),
])
def test_unknown_reference(tmp_path: Path, change: Any, expected: str, path: tuple[Any, ...]) -> None:
    plan = department()
    if "city" in expected:
        plan["target"] = "municipal-dc"
    change(plan)
    (finding,) = only(check(write_plans(tmp_path, plan))[1], "unknown-reference")
    assert expected in finding.message
    assert finding.path == path


def test_unknown_reference_near_miss(tmp_path: Path) -> None:
    """Cross-department dependency, a milestone, a parent, a city: all name something."""
    owner = department("fj-aaa")
    child = department("fz-bbb", level="city", city="fuzhou", target="municipal-dc", kind="institution",
                       funding="full", parent="fj-aaa")
    child["systems"][0]["depends_on"] = ["fj-aaa/alpha", "infra:municipal-dc-fuzhou"]
    # a subordinate institution moves with its department, unless self-funded: make it so
    child["department"]["funding"] = "self"
    child["target"] = "social-enterprise-cloud"
    clean(check(two_departments(tmp_path, owner, child))[1])


# --- cycle ---------------------------------------------------------------------------------


def test_cycle_across_departments_is_reported_as_its_chain(tmp_path: Path) -> None:
    a, b = department("fj-aaa"), department("fj-bbb")
    a["systems"][0]["depends_on"] = ["fj-bbb/beta"]
    b["systems"][1]["depends_on"] = ["fj-bbb/alpha"]
    b["systems"][0]["depends_on"] = ["fj-aaa/alpha"]
    _plans, result = check(two_departments(tmp_path, a, b))
    (finding,) = only(result, "cycle")
    assert finding.message == "dependency cycle: fj-aaa/alpha -> fj-bbb/beta -> fj-bbb/alpha -> fj-aaa/alpha"
    assert finding.file.endswith("fj-aaa.yaml")
    assert result.schedule is None  # no schedule for a graph that cannot be ordered


def test_cycle_depends_on_itself(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][1]["depends_on"] = ["fj-test/beta"]
    (finding,) = only(check(write_plans(tmp_path, plan))[1], "cycle")
    assert finding.message == "dependency cycle: fj-test/beta -> fj-test/beta"
    assert finding.path == ("systems", 1, "depends_on")


def test_cycle_in_parent_chain(tmp_path: Path) -> None:
    a = department("fj-aaa", kind="institution", funding="full", parent="fj-bbb")
    b = department("fj-bbb", kind="institution", funding="full", parent="fj-aaa")
    (finding,) = only(check(two_departments(tmp_path, a, b))[1], "cycle")
    assert finding.message.startswith("parent cycle: fj-aaa -> fj-bbb -> fj-aaa")


def test_cycle_near_miss_diamond(tmp_path: Path) -> None:
    """A diamond (two paths to one dependency) is no cycle."""
    plan = department(systems=[
        system("top", depends_on=["fj-test/left", "fj-test/right"]),
        system("left", depends_on=["fj-test/base"]),
        system("right", depends_on=["fj-test/base"]),
        system("base"),
    ])
    clean(check(write_plans(tmp_path, plan))[1])


# --- classified-excluded -------------------------------------------------------------------


def test_classified_dependency(tmp_path: Path) -> None:
    plan = department()
    plan["private_networks"] = []
    plan["systems"][1]["classification"] = "police-sensitive"
    plan["systems"][0]["depends_on"] = ["fj-test/beta"]
    (finding,) = only(check(write_plans(tmp_path, plan))[1], "classified-excluded")
    assert "police-sensitive" in finding.message and finding.path == ("systems", 0, "depends_on", 0)


def test_classified_on_a_migrating_network(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][1]["classification"] = "classified"
    (finding,) = only(check(write_plans(tmp_path, plan))[1], "classified-excluded")
    assert finding.path == ("private_networks", 0, "systems", 1)


def test_classified_near_miss_retained_network_nobody_depends(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][1]["classification"] = "classified"
    plan["private_networks"][0].update(
        migrate_to="retain", systems=["beta"],
        retain_approval={"by": "省保密局", "date": date(2017, 9, 1), "reason": "涉密"})
    clean(check(write_plans(tmp_path, plan))[1])


# --- target-policy -------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"target": "social-enterprise-cloud"}, "only self-funded institutions"),
    ({"kind": "institution", "funding": "full", "target": "social-enterprise-cloud"}, "only self-funded"),
    ({"level": "city", "city": "xiamen"}, "moves to its city's data center"),
    ({"target": "municipal-dc"}, "moves to the provincial cloud"),
])
def test_target_policy(tmp_path: Path, overrides: dict[str, Any], expected: str) -> None:
    (finding,) = only(check(write_plans(tmp_path, department(**overrides)))[1], "target-policy")
    assert expected in finding.message and finding.path == ("target",)


def test_target_policy_subordinate_moves_with_its_department(tmp_path: Path) -> None:
    owner = department("fj-aaa")
    child = department("fz-bbb", level="city", city="fuzhou", kind="institution", funding="full",
                       parent="fj-aaa", target="municipal-dc")
    findings = only(check(two_departments(tmp_path, owner, child))[1], "target-policy")
    assert any("moves with its department" in f.message for f in findings)


@pytest.mark.parametrize("overrides", [
    {"kind": "institution", "funding": "self", "target": "social-enterprise-cloud"},
    {"level": "county", "city": "ningde", "target": "municipal-dc"},
    {"kind": "party"},
])
def test_target_policy_near_miss(tmp_path: Path, overrides: dict[str, Any]) -> None:
    clean(check(write_plans(tmp_path, department(**overrides)))[1])


# --- retain-approval -----------------------------------------------------------------------


def test_retain_without_approval(tmp_path: Path) -> None:
    plan = department()
    plan["private_networks"][0]["migrate_to"] = "retain"
    (finding,) = only(check(write_plans(tmp_path, plan))[1], "retain-approval")
    assert finding.path == ("private_networks", 0)


def test_retain_with_approval_near_miss(tmp_path: Path) -> None:
    plan = department()
    plan["private_networks"][0].update(migrate_to="retain", retain_approval={
        "by": "省数字福建办", "date": date(2017, 10, 1), "reason": "dedicated line to the ministry"})
    _plans, result = check(write_plans(tmp_path, plan))
    clean(result)
    assert result.schedule is not None
    assert not any(s.endswith(":retire") for s in result.schedule.timings)  # retained: no retire step


# --- zombie-dependency ---------------------------------------------------------------------


def test_active_depends_on_zombie(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][1]["status"] = "zombie"
    plan["systems"][0]["depends_on"] = ["fj-test/beta"]
    (finding,) = only(check(write_plans(tmp_path, plan))[1], "zombie-dependency")
    assert "depends on zombie 'fj-test/beta'" in finding.message


def test_zombie_depends_on_zombie_near_miss(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][0]["status"] = "zombie"
    plan["systems"][1]["status"] = "zombie"
    plan["systems"][0]["depends_on"] = ["fj-test/beta"]
    clean(check(write_plans(tmp_path, plan))[1])


# --- census-incomplete ---------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("function", None), ("approved_by", ""), ("approved_by", "   "), ("scope", ""), ("approved_on", ""),
    ("name", None),
])
def test_census_incomplete(tmp_path: Path, field: str, value: Any) -> None:
    plan = department()
    if value is None:
        del plan["systems"][1][field]
    else:
        plan["systems"][1][field] = value
    (finding,) = only(check(write_plans(tmp_path, plan))[1], "census-incomplete")
    assert field in finding.message and finding.path == ("systems", 1, field)


def test_census_near_miss_terse_but_present(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][1].update(function="x", approved_by="省", frequency="never", scope="public")
    clean(check(write_plans(tmp_path, plan))[1])


# --- deadline ------------------------------------------------------------------------------


def test_deadline_is_a_warning_by_default_and_an_error_with_strict(tmp_path: Path) -> None:
    root = write_plans(tmp_path, department(deadline=date(2017, 12, 31)))
    warnings = only(check(root, start=date(2018, 1, 1))[1], "deadline", "warning")
    assert any("after its deadline 2017-12-31" in f.message for f in warnings)
    errors = only(check(root, start=date(2018, 1, 1), strict=True)[1], "deadline", "error")
    assert len(errors) == len(warnings)


def test_deadline_near_miss_finishing_on_the_deadline_day(tmp_path: Path) -> None:
    """Everything finishes within hours: starting on the deadline day itself is still in time."""
    root = write_plans(tmp_path, department(deadline=date(2017, 12, 31)))
    clean(check(root, start=date(2017, 12, 31), strict=True)[1])


def test_deadline_decommission_has_its_own_date(tmp_path: Path) -> None:
    """Province agencies decommission zombies by 2018-02-28, the rest by 2018-06-30."""
    plan = department()
    plan["systems"][1]["status"] = "zombie"
    (finding,) = only(check(write_plans(tmp_path, plan), start=date(2018, 3, 1))[1], "deadline", "warning")
    assert "fj-test/beta:decommission" in finding.message and "2018-02-28" in finding.message


def test_deadline_from_slow_bandwidth(tmp_path: Path) -> None:
    """The schedule decides: 100 TB at 0.01 Gbit/s takes about 925 days."""
    plan = department()
    plan["systems"][0]["data"]["size_gb"] = 100_000
    root = write_plans(tmp_path, plan)
    clean(check(root)[1])
    findings = only(check(root, bandwidth_gbit=0.01)[1], "deadline", "warning")
    assert any("fj-test/alpha:presync" in f.message for f in findings)


def test_deadline_milestone_without_a_due_date(tmp_path: Path) -> None:
    infra = {"version": 1, "milestones": [*INFRA["milestones"], {"id": "extranet-new", "ready": False}]}
    plan = department()
    plan["systems"][0]["depends_on"] = ["infra:extranet-new"]
    (finding,) = only(check(write_plans(tmp_path, plan, infra=infra))[1], "deadline", "warning")
    assert finding.file.endswith("infra.yaml") and finding.line == 8
    assert "infra:extranet-new is not ready and has no due date" in finding.message
    assert "fj-test/alpha:cutover" in finding.message


def test_deadline_milestone_near_miss_ready_or_due(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][0]["depends_on"] = ["infra:provincial-cloud", "infra:municipal-dc-fuzhou"]
    clean(check(write_plans(tmp_path, plan), strict=True)[1])


# --- window --------------------------------------------------------------------------------


def test_window_too_short_for_the_cutover(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][0]["cutover"] = {"window": "2017-12-09T22:00+08:00/PT20M"}  # cutover takes 30m + 8s
    (finding,) = only(check(write_plans(tmp_path, plan))[1], "window", "warning")
    assert "does not fit its window" in finding.message
    assert finding.path == ("systems", 0, "cutover", "window")


def test_window_already_past(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][0]["cutover"] = {"window": "2017-11-01T22:00+08:00/PT6H"}
    (finding,) = only(check(write_plans(tmp_path, plan))[1], "window", "warning")
    assert "cannot start inside its window" in finding.message


def test_window_near_miss_just_long_enough(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][0]["cutover"] = {"window": "2017-12-09T22:00+08:00/PT31M"}
    _plans, result = check(write_plans(tmp_path, plan))
    clean(result)
    timing = result.schedule.timings["fj-test/alpha:cutover"]
    assert result.schedule.at(timing.start).isoformat() == "2017-12-09T22:00:00+08:00"


# --- all findings at once ------------------------------------------------------------------


def test_every_finding_is_reported_in_one_run(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][0]["depends_on"] = ["fj-none/x"]
    plan["systems"][1]["approved_by"] = ""
    plan["private_networks"][0]["migrate_to"] = "retain"
    plan["target"] = "municipal-dc"
    broken = department("fj-zzz")
    del broken["target"]
    result = check(write_plans(tmp_path, plan, unique_hosts(broken)))[1]
    assert sorted(rules(result)) == sorted(
        ["unknown-reference", "census-incomplete", "retain-approval", "target-policy", "schema"])
