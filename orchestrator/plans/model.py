"""The migration plan model: docs/PLAN_FORMAT.md version 1 as pydantic v2 models.

These models are the single source of truth for the plan format: the validator, the scheduler,
the executor, the Pulumi programs and the reports all read plans through them, and
`migration_plans/schema.json` is generated from them (`fjmig schema`).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from ipaddress import IPv4Network
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

ID_PATTERN = r"^[a-z][a-z0-9-]{1,40}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

CITIES: tuple[str, ...] = (
    "fuzhou",
    "xiamen",
    "putian",
    "sanming",
    "quanzhou",
    "zhangzhou",
    "nanping",
    "longyan",
    "ningde",
    "pingtan",
)
CENSUS_FIELDS: tuple[str, ...] = (
    "name",
    "function",
    "scope",
    "frequency",
    "approved_by",
    "approved_on",
    "funding_source",
)

Level = Literal["province", "city", "county"]
Kind = Literal["agency", "party", "institution"]
Target = Literal["provincial-cloud", "municipal-dc", "social-enterprise-cloud"]
Classification = Literal["unclassified", "classified", "police-sensitive"]
Status = Literal["active", "zombie"]
Theme = Literal[
    "credit",
    "public-resource-trading",
    "investment",
    "prices",
    "natural-person",
    "legal-person",
    "energy",
    "spatial-geography",
    "transport",
    "tourism",
]
THEMES: tuple[str, ...] = get_args(Theme)


def _blank_to_none(value: Any) -> Any:
    """Census fields: an empty value is reported by `census-incomplete`, not as a type error."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _census(annotation: Any) -> Any:
    return Annotated[annotation | None, BeforeValidator(_blank_to_none)]


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt field must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Owner(_Strict):
    name: str
    contact: str


class Department(_Strict):
    id: Id = Field(description="Department id; must equal the plan's file name.")
    name: str = Field(min_length=1)
    level: Level
    city: str | None = Field(None, description="For city and county departments: " + ", ".join(CITIES))
    kind: Kind
    funding: Literal["full", "self"] | None = Field(
        None, description="Institutions only: full (budget-funded) or self (self-funded)."
    )
    parent: Id | None = Field(None, description="Owning department's id, for subordinate institutions.")
    owner: Owner | None = None
    deadline: date | None = Field(
        None, description="An earlier move deadline than the policy default (first-wave: 2017-12-31)."
    )

    @model_validator(mode="after")
    def _institution_funding(self) -> Department:
        if self.kind == "institution" and self.funding is None:
            raise ValueError("an institution must say its funding: full or self")
        if self.kind != "institution" and self.funding is not None:
            raise ValueError(f"funding applies to institutions only, not to a {self.kind}")
        return self


class Datacenter(_Strict):
    id: Id
    hosts: list[Id] = Field(min_length=1, description="Inventory names of the data center's hosts.")


DATA_PATH_PATTERN = r"^(/[A-Za-z0-9._-]+)+$"
MAX_SIZE_GB = 1e8
"""100 PB: larger sizes are typos, and would overflow the schedule's calendar."""


class Data(_Strict):
    path: Annotated[str, StringConstraints(pattern=DATA_PATH_PATTERN)] = Field(
        description="Absolute path of the system's data on its host (letters, digits, . _ - /)."
    )
    size_gb: float = Field(ge=0, allow_inf_nan=False)
    daily_change_gb: float = Field(0.0, ge=0, allow_inf_nan=False)

    @field_validator("size_gb", "daily_change_gb")
    @classmethod
    def _plausible_size(cls, value: float) -> float:
        # Checked here rather than with `le=` so that the published schema.json stays as it is.
        if value > MAX_SIZE_GB:
            raise ValueError(f"{value:g} GB is more than any data center holds (at most {MAX_SIZE_GB:g} GB)")
        return value

    @field_validator("path")
    @classmethod
    def _no_dot_dot(cls, value: str) -> str:
        if any(part in {".", ".."} for part in value.split("/")):
            raise ValueError("data.path must not contain '.' or '..' components")
        return value


WINDOW_PATTERN = r"^\S+/\S+$"
_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$")
_NO_SECONDS = re.compile(r"\d+S$")
DEFAULT_MAX_DOWNTIME_S = 10.0
"""A cutover's deadline when its plan gives none: a few times the freeze measured on the lab (the
stop, the final delta and the switch take 0.3-2 s there, bench/README.md)."""


def parse_duration(text: str, seconds: bool = False) -> timedelta:
    """ISO 8601 duration restricted to days, hours and minutes (`PT6H`, `P1DT2H30M`), and seconds
    where they make sense (`PT30S`: a cutover's max_downtime; a window is not that precise)."""
    match = _DURATION.match(text)
    if not match or text in {"P", "PT"} or text.endswith("T") or (not seconds and _NO_SECONDS.search(text)):
        example = "PT30S" if seconds else "PT6H"
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as {example}")
    try:
        parts = {k: int(v) for k, v in match.groupdict(default="0").items()}
        return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
    except (OverflowError, ValueError):
        raise ValueError(f"{text[:40]!r} is too long a duration") from None


def parse_window(text: str) -> tuple[datetime, datetime]:
    """`START/DURATION` or `START/END`, START with a UTC offset; returns aware datetimes."""
    start_text, _, end_text = text.partition("/")
    start = datetime.fromisoformat(start_text)
    if start.tzinfo is None:
        raise ValueError(f"window start {start_text!r} needs a UTC offset, e.g. +08:00")
    if end_text.startswith("P"):
        try:
            end = start + parse_duration(end_text)
        except OverflowError:
            raise ValueError(f"{text[:60]!r} ends after the year 9999") from None
    else:
        end = datetime.fromisoformat(end_text)
        if end.tzinfo is None:
            end = end.replace(tzinfo=start.tzinfo)
    if end <= start:
        raise ValueError(f"window {text!r} ends before it starts")
    return start, end


class Cutover(_Strict):
    window: Annotated[str, StringConstraints(pattern=WINDOW_PATTERN)] | None = Field(
        None,
        description="ISO 8601 interval START/DURATION or START/END, e.g. 2017-12-09T22:00+08:00/PT6H",
    )
    approval: bool = Field(False, description="The cutover waits for `fjmig approve DEPT/SYSTEM`.")
    max_downtime: Annotated[str, StringConstraints(pattern=r"^P\S+$")] | None = Field(
        None,
        description="ISO 8601 duration such as PT30S: if the switch is not committed this long after the "
        "freeze began (nor by the end of an enforced window), the source host starts the service again "
        f"itself. Default PT{DEFAULT_MAX_DOWNTIME_S:.0f}S.",
    )

    @field_validator("max_downtime")
    @classmethod
    def _valid_max_downtime(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                seconds = parse_duration(value, seconds=True).total_seconds()
            except ValueError as exc:
                raise ValueError(f"max_downtime: {exc}") from None
            if seconds <= 0:
                raise ValueError("max_downtime: must be longer than zero")
        return value

    def max_downtime_s(self) -> float:
        """Seconds the freeze may last before the source host restores the service itself."""
        if not self.max_downtime:
            return DEFAULT_MAX_DOWNTIME_S
        return parse_duration(self.max_downtime, seconds=True).total_seconds()

    @field_validator("window")
    @classmethod
    def _valid_window(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_window(value)
            except ValueError as exc:
                raise ValueError(f"window: {exc}") from None
        return value

    def bounds(self) -> tuple[datetime, datetime] | None:
        return parse_window(self.window) if self.window else None


class System(_Strict):
    id: Id
    name: _census(str) = Field(None, description="Census field.")
    function: _census(str) = Field(None, description="Census field.")
    scope: _census(Literal["department", "city", "province", "public"]) = Field(
        None, description="Census field: scope of use."
    )
    frequency: _census(Literal["daily", "weekly", "monthly", "rarely", "never"]) = Field(
        None, description="Census field: frequency of use."
    )
    approved_by: _census(str) = Field(None, description="Census field: approving department.")
    approved_on: _census(date) = Field(None, description="Census field: approval date.")
    funding_source: _census(Literal["fiscal", "self", "other"]) = Field(
        None, description="Census field."
    )
    classification: Classification
    status: Status
    host: Id = Field(description="One of the department's datacenter.hosts.")
    data: Data
    share: bool = Field(description="Connect to the sharing platform after the move.")
    themes: list[Theme] = Field(default_factory=list)
    depends_on: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        default_factory=list,
        description="Global system ids `<department>/<system>` or milestones `infra:<id>`.",
    )
    cutover: Cutover | None = None

    @property
    def excluded(self) -> bool:
        """Classified and police-sensitive systems are excluded from integration (POLICY rule 2)."""
        return self.classification != "unclassified"

    @property
    def migrates(self) -> bool:
        return self.status == "active" and not self.excluded


class RetainApproval(_Strict):
    by: str = Field(min_length=1)
    date: date
    reason: str = Field(min_length=1)


class PrivateNetwork(_Strict):
    id: Id
    cidr: IPv4Network
    systems: list[Id] = Field(description="Ids of the department's systems that use the network.")
    migrate_to: Literal["extranet", "intranet", "retain"]
    retain_approval: RetainApproval | None = None


class DepartmentPlan(_Strict):
    """One department file."""

    version: Literal[1]
    department: Department
    datacenter: Datacenter | None = None
    target: Target
    systems: list[System]
    private_networks: list[PrivateNetwork] = Field(default_factory=list)

    @property
    def id(self) -> str:
        return self.department.id

    @property
    def target_group(self) -> str:
        """Where the department lands, as the Pulumi stacks and the lab group targets:
        municipal data centers are per city (`municipal-dc-<city>`)."""
        if self.target == "municipal-dc":
            return f"municipal-dc-{self.department.city or 'unknown'}"
        return self.target


class Milestone(_Strict):
    id: Id
    ready: bool
    due: date | None = None


class InfraPlan(_Strict):
    """`infra.yaml`: milestones the Pulumi stacks deliver."""

    version: Literal[1]
    milestones: list[Milestone] = Field(default_factory=list)


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema: `schema.json` for department files, `infra.schema.json` for
    infra.yaml (editors validate plans as they are typed)."""
    out = {}
    for name, model, title in (
        ("schema.json", DepartmentPlan, "fjmig department migration plan, version 1"),
        ("infra.schema.json", InfraPlan, "fjmig infra.yaml milestones, version 1"),
    ):
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = title
        out[name] = schema
    return out
