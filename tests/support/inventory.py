"""An inventory and outputs for a plan set without a lab: every host its jobs touch, named as the
lab's outputs name them (the executor's unit tests run no job, so addresses are placeholders)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.execution.inventory import Inventory
from orchestrator.plans.loader import PlanSet
from orchestrator.plans.naming import target_host


def mini_inventory(plans: PlanSet, path: Path) -> Inventory:
    """Every host the mini plans' jobs touch, as the lab's outputs would name them."""
    hosts: dict[str, dict[str, Any]] = {}
    targets, archives = {}, {}
    for plan in plans.departments.values():
        assert plan.datacenter is not None
        for host in plan.datacenter.hosts:
            hosts[host] = {"ansible_host": "198.18.0.10"}
        hosts[f"office-{plan.id}"] = {"ansible_host": "198.18.0.11"}
        archives[plan.id] = {"host": f"archive-{plan.id}", "address": "198.18.0.12"}
        hosts[f"archive-{plan.id}"] = {}
        for system in plan.systems:
            if system.migrates:
                name = target_host(plan.id, system.id)
                targets[f"{plan.id}/{system.id}"] = {"host": name, "address": "198.18.0.13"}
                hosts[name] = {}
    hosts["sharing-platform"] = {}
    outputs = {"targets": targets, "archives": archives,
               "platform": {"host": "sharing-platform", "address": "198.18.0.14"}}
    return Inventory(path, hosts, {"all": list(hosts)}, outputs)
