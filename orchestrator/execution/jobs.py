"""From a step to a playbook job: which playbook, with which extra variables (docs/EXECUTION.md).

Pure functions over the plan model and the inventory: easy to test, and the one place that
knows which plan values a playbook receives. No secret is ever part of a job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import FjmigError
from ..plans.kinds import KINDS
from ..plans.loader import PlanSet
from ..plans.model import Cutover, DepartmentPlan, System
from ..plans.naming import service_key, service_name, service_port
from ..plans.steps import Step, system_steps
from .inventory import Inventory


class JobError(FjmigError):
    """A step cannot be turned into a job (e.g. its target is not in the outputs)."""


@dataclass(frozen=True)
class Job:
    step_id: str
    playbook: str
    extravars: dict[str, Any]
    hosts: tuple[str, ...]
    """Inventory hosts the job touches (for messages and cleanup)."""
    also: tuple[str, ...] = ()
    """Further steps the job runs after step_id (a presync's cutover, executor._fusable)."""


def default_port(plan: DepartmentPlan, system: System) -> int:
    """The lab's and the Pulumi programs' rule (naming.service_port), for outputs without ports."""
    return service_port(next(i for i, s in enumerate(plan.systems) if s.id == system.id))


def _system_context(plans: PlanSet, inv: Inventory, dept: str, name: str) -> dict[str, Any]:
    plan, system = plans.systems[f"{dept}/{name}"]
    gid = f"{dept}/{name}"
    service = inv.service(gid)
    target = inv.target(gid)
    office = f"office-{dept}"
    context: dict[str, Any] = {
        "dept": dept,
        "system": name,
        "data_path": system.data.path,
        "source_host": system.host,
        "service_key": service_key(dept, name),
        "service_port": int((target or {}).get("port") or service.get("port") or default_port(plan, system)),
        "service_name": service.get("name") or service_name(dept, name),
        "office_hosts": [office] if inv.has(office) else [],
        "source_address": service.get("source_address") or inv.address(system.host),
        "max_downtime_s": (system.cutover or Cutover()).max_downtime_s(),
    }
    if target:
        context["target_host"] = target["host"]
        context["target_address"] = target["address"]
    return context


def _require(context: dict[str, Any], key: str, why: str) -> None:
    if not context.get(key):
        raise JobError(why)


def build_job(step: Step, plans: PlanSet, inv: Inventory) -> Job:
    """The playbook and extra variables for one step (plans/kinds.py declares which, per kind)."""
    kind = KINDS[step.kind]
    if kind.playbook is None:
        raise JobError(f"{step.id}: steps of kind {step.kind} run no playbook")
    values, hosts = _job_values(step, plans, inv)
    extravars = {"fjmig_step": step.id, **{name: values[name] for name in kind.variables}}
    return Job(step.id, kind.playbook, extravars, tuple(hosts))


def _job_values(step: Step, plans: PlanSet, inv: Inventory) -> tuple[dict[str, Any], list[str]]:
    """Every value a step's playbook may receive, and the inventory hosts its job touches."""
    if step.kind in ("presync", "cutover", "verify", "share", "decommission", "rollback"):
        ctx = _system_context(plans, inv, step.dept, step.subject)
        if not inv.has(ctx["source_host"]):
            raise JobError(f"source host {ctx['source_host']} of {step.system_id} is not in the inventory {inv.path}")
        if step.kind != "decommission":
            _require(ctx, "target_host", f"no target for {step.system_id} in the outputs "
                                         "(pulumi stack output --json of its stack, or the lab's outputs.json)")
        hosts = [ctx["source_host"]] + ([ctx["target_host"]] if ctx.get("target_host") else [])
        if step.kind == "decommission":
            plan = plans.departments[step.dept]
            archive = inv.archive(step.dept, plan.target_group)
            if not archive:
                raise JobError(f"no archive host for {step.dept} in the outputs ('archives')")
            ctx.update(archive_host=archive["host"], archive_address=archive["address"])
            hosts.append(archive["host"])
        elif step.kind == "share":
            platform = inv.platform()
            if not platform:
                raise JobError("no sharing platform in the outputs ('platform') or inventory")
            _, system = plans.systems[step.system_id]
            ctx.update(platform_host=platform["host"], platform_address=platform["address"],
                       catalog=catalog_entry(step.dept, system, ctx))
            hosts = [ctx["target_host"], platform["host"]]
        elif step.kind in ("cutover", "rollback"):
            hosts += ctx["office_hosts"]
        return ctx, hosts

    plan = plans.departments[step.dept]
    if step.kind == "retire":
        network = next(n for n in plan.private_networks if n.id == step.subject)
        office = f"office-{step.dept}"
        checks = []
        for name in network.systems:
            system = next((s for s in plan.systems if s.id == name), None)
            if system is not None and system.migrates:
                ctx = _system_context(plans, inv, step.dept, name)
                checks.append({"name": ctx["service_name"], "port": ctx["service_port"]})
        hosts = [office] if inv.has(office) else []
        return {"dept": step.dept, "network": network.id, "office_host": office, "checks": checks}, hosts
    if step.kind == "close":
        if plan.datacenter is None:
            raise JobError(f"{step.id}: {step.dept} has no data center to close")
        keys = [service_key(step.dept, s.id) for s in plan.systems
                if system_steps(s) and s.host in plan.datacenter.hosts]
        return ({"dept": step.dept, "datacenter": plan.datacenter.id, "dc_hosts": list(plan.datacenter.hosts),
                 "service_keys": keys}, list(plan.datacenter.hosts))
    raise JobError(f"{step.id}: no playbook for steps of kind {step.kind}")


def catalog_entry(dept: str, system: System, ctx: dict[str, Any]) -> dict[str, Any]:
    """What the sharing platform's catalog records for a connected system."""
    return {
        "department": dept,
        "system": system.id,
        "name": system.name,
        "function": system.function,
        "scope": system.scope,
        "frequency": system.frequency,
        "approved_by": system.approved_by,
        "approved_on": system.approved_on.isoformat() if system.approved_on else None,
        "funding_source": system.funding_source,
        "themes": list(system.themes),
        "endpoint": f"http://{ctx['target_address']}:{ctx['service_port']}/",
    }
