"""The pydantic model: windows and durations, derived properties, the published JSON Schemas."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from orchestrator.plans.model import (
    MAX_SIZE_GB,
    Cutover,
    Data,
    DepartmentPlan,
    System,
    json_schemas,
    parse_duration,
    parse_window,
)
from tests.support import PLANS
from tests.support.plans import department, system

CST = timezone(timedelta(hours=8))


@pytest.mark.parametrize(("text", "expected"), [
    ("PT6H", timedelta(hours=6)), ("PT30M", timedelta(minutes=30)), ("P1D", timedelta(days=1)),
    ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["P", "PT", "P1DT", "6H", "PT6S", "P1W", "PT-1H", "P" + "9" * 30 + "D", ""])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration"):
        parse_duration(text)


def test_seconds_only_where_asked_for() -> None:
    assert parse_duration("PT1M30S", seconds=True) == timedelta(seconds=90)
    with pytest.raises(ValueError, match=r"such as PT6H"):
        parse_duration("PT1M30S")


def test_parse_window_forms() -> None:
    start = datetime(2017, 12, 9, 22, 0, tzinfo=CST)
    assert parse_window("2017-12-09T22:00+08:00/PT6H") == (start, start + timedelta(hours=6))
    assert parse_window("2017-12-09T22:00+08:00/2017-12-10T04:00+08:00") == (start, start + timedelta(hours=6))
    # an end without an offset takes the start's
    assert parse_window("2017-12-09T22:00+08:00/2017-12-10T04:00") == (start, start + timedelta(hours=6))


@pytest.mark.parametrize(("text", "message"), [
    ("2017-12-09T22:00/PT6H", "needs a UTC offset"),
    ("2017-12-09T22:00+08:00/2017-12-09T21:00+08:00", "ends before it starts"),
    ("2017-12-09T22:00+08:00/PT0M", "ends before it starts"),
    ("2017-12-09T22:00+08:00/P99999999D", "ends after the year 9999"),
    ("2017-02-30T22:00+08:00/PT6H", "day is out of range"),
    ("tonight/PT6H", "Invalid isoformat"),
])
def test_parse_window_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_window(text)
    with pytest.raises(ValidationError):  # and the model reports it as a validation error, not a crash
        Cutover.model_validate({"window": text})


def test_sizes_must_be_finite_plausible_and_not_negative() -> None:
    assert Data.model_validate({"path": "/srv/x", "size_gb": MAX_SIZE_GB}).size_gb == MAX_SIZE_GB
    for bad in (-1, float("inf"), float("nan"), MAX_SIZE_GB * 10, "lots"):
        with pytest.raises(ValidationError):
            Data.model_validate({"path": "/srv/x", "size_gb": bad})
    with pytest.raises(ValidationError):
        Data.model_validate({"path": "/srv/x", "size_gb": 1, "daily_change_gb": float("inf")})


@pytest.mark.parametrize("path", ["srv/x", "/srv/x y", "/srv/../etc", "/srv/./x", "/", "/srv/x;rm", "/srv/$HOME"])
def test_data_path_is_a_plain_absolute_path(path: str) -> None:
    with pytest.raises(ValidationError):
        Data.model_validate({"path": path, "size_gb": 1})


@pytest.mark.parametrize(("status", "classification", "excluded", "migrates"), [
    ("active", "unclassified", False, True),
    ("zombie", "unclassified", False, False),
    ("active", "classified", True, False),
    ("active", "police-sensitive", True, False),
])
def test_system_properties(status: str, classification: str, excluded: bool, migrates: bool) -> None:
    item = System.model_validate(system("sys-x", status=status, classification=classification))
    assert (item.excluded, item.migrates) == (excluded, migrates)


def test_models_are_frozen_and_strict() -> None:
    plan = DepartmentPlan.model_validate(department())
    assert plan.id == "fj-test"
    with pytest.raises(ValidationError):
        plan.target = "municipal-dc"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="institution must say its funding"):
        DepartmentPlan.model_validate(department(kind="institution"))


def test_json_schemas_match_the_published_files() -> None:
    schemas = json_schemas()
    assert set(schemas) == {"schema.json", "infra.schema.json"}
    for name, schema in schemas.items():
        published = json.loads((PLANS / name).read_text("utf-8"))
        assert published == schema, f"migration_plans/{name} is stale: run 'fjmig schema --write'"
    department_schema = schemas["schema.json"]
    assert department_schema["required"] == ["version", "department", "target", "systems"]
    assert department_schema["additionalProperties"] is False
