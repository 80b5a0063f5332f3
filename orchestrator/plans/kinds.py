"""The step kinds, declared once: what each kind's job runs and how the run treats it.

Everything that depends on a step's kind reads this table: the step graph (which kinds exist), the
schedule (which kinds move data and so take one of the `--parallel` transfer slots), `fjmig run
--until KIND` (rank), and the executor's jobs (the playbook and the extra variables it receives,
docs/EXECUTION.md's playbook table, which a test holds against this one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

StepKind = Literal["milestone", "presync", "cutover", "verify", "share", "decommission", "retire", "close",
                   "rollback"]

SWITCH_VARIABLES = ("dept", "system", "data_path", "source_host", "target_host", "target_address", "service_key",
                    "service_port", "service_name", "office_hosts")


@dataclass(frozen=True)
class Kind:
    name: StepKind
    rank: int | None
    """Order for `--until KIND`: a run selects the steps whose rank is at most KIND's. None: a step
    no run selects (a milestone is a fact about the infrastructure; a rollback is asked for)."""
    playbook: str | None
    """The playbook its job runs (playbooks/); None for a milestone, which runs nothing."""
    variables: tuple[str, ...] = ()
    """The extra variables the playbook receives besides `fjmig_step` and `fjmig_job_token`."""
    hosts: str = ""
    """Which hosts its job touches, in words (docs/EXECUTION.md)."""
    transfer: bool = False
    """Moves data: takes one of the schedule's `--parallel` transfer slots."""


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("milestone", None, None),
    Kind("presync", 1, "presync.yml",
         ("dept", "system", "data_path", "source_host", "target_host", "target_address"),
         "source", transfer=True),
    Kind("decommission", 1, "decommission.yml",
         ("dept", "system", "data_path", "source_host", "service_key", "archive_host", "archive_address"),
         "source, archive", transfer=True),
    Kind("cutover", 2, "cutover.yml", (*SWITCH_VARIABLES, "max_downtime_s"), "source, target, offices", transfer=True),
    Kind("verify", 3, "verify.yml",
         ("dept", "system", "data_path", "source_host", "target_host", "target_address", "service_port"),
         "source, target"),
    Kind("share", 4, "share.yml",
         ("dept", "system", "data_path", "target_host", "platform_host", "platform_address", "catalog"),
         "target, platform", transfer=True),
    Kind("retire", 5, "retire.yml", ("dept", "network", "office_host", "checks"), "office"),
    Kind("close", 6, "close.yml", ("dept", "datacenter", "dc_hosts", "service_keys"), "the data center's hosts"),
    Kind("rollback", None, "rollback.yml", (*SWITCH_VARIABLES, "source_address"), "target, source, offices"),
)}

PLAN_KINDS: tuple[str, ...] = tuple(name for name in KINDS if name != "rollback")
"""The kinds a plan expands to (a rollback is not planned: `fjmig rollback` asks for one)."""
UNTIL_KINDS: tuple[str, ...] = tuple(sorted((k.name for k in KINDS.values() if k.rank is not None),
                                            key=lambda name: KINDS[name].rank or 0))
"""The choices of `fjmig run --until`, in rank order."""
TRANSFER_KINDS = frozenset(k.name for k in KINDS.values() if k.transfer)
"""Steps that move data and so take one of the `--parallel` transfer slots."""


def selected_by_until(kind: str, until: str | None) -> bool:
    """Whether `--until UNTIL` (None: no limit) lets a step of KIND run."""
    rank = KINDS[kind].rank
    if rank is None:
        return False
    return until is None or rank <= (KINDS[until].rank or 0)
