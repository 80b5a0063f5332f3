"""Execution nodes: which node runs a job (docs/EXECUTION.md, 'Execution nodes').

The inventory declares them: the hosts of the group `fjmig_execution_nodes`, each with the groups
it serves (`fjmig_node_serves`). A node reaches the hosts of those groups; a job runs on the node
that reaches every host it touches (the one that reaches the fewest hosts when several do, then
by name: the same job always goes to the same node). Without nodes every job runs on the control
node. Pure: routing and its refusal are decided before anything runs, and unit tested.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FjmigError
from .inventory import Inventory
from .jobs import Job

NODES_GROUP = "fjmig_execution_nodes"
NODE_VARS = {
    "fjmig_node_serves": "the inventory groups whose hosts the node reaches (a list)",
    "fjmig_node_venv": "the node's own environment with ansible-core and ansible-runner (a path on the node)",
    "fjmig_node_key": "the node's private key for the hosts it serves (a path on the node)",
    "fjmig_node_known_hosts": "their pinned host keys (a path on the node)",
    "fjmig_control_known_hosts": "the node's pinned host key (a path on the control node)",
    "ansible_ssh_private_key_file": "the control node's key for the node (a path on the control node)",
}
"""What each node declares (besides ansible_host, ansible_user, ansible_port)."""


class NodeError(FjmigError):
    """The inventory's execution nodes are declared wrongly, or a job has no node; the message says which."""


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    user: str
    port: int
    key: str
    """The control node's private key for the node (on the control node)."""
    known_hosts: str
    """The node's pinned host key (on the control node): never accepted on first use."""
    venv: str
    host_key: str
    """On the node: its own key for the hosts it serves."""
    host_known_hosts: str
    serves: tuple[str, ...]
    reach: frozenset[str]


def group_hosts(inv: Inventory, group: str, seen: set[str] | None = None) -> set[str]:
    """The hosts of GROUP and of its child groups."""
    seen = seen if seen is not None else set()
    if group in seen:
        return set()
    seen.add(group)
    hosts = set(inv.groups.get(group, []))
    for child in inv.children.get(group, []):
        hosts |= group_hosts(inv, child, seen)
    return hosts


def nodes_of(inv: Inventory) -> dict[str, Node]:
    """The execution nodes the inventory declares (empty: every job runs on the control node)."""
    names = sorted(group_hosts(inv, NODES_GROUP))
    nodes = {}
    for name in names:
        hostvars: dict[str, Any] = inv.hostvars.get(name, {})
        missing = [var for var in NODE_VARS if not hostvars.get(var)]
        if missing:
            raise NodeError(f"{inv.path}: execution node {name} lacks " + "; ".join(
                f"{var} ({NODE_VARS[var]})" for var in missing))
        serves = hostvars["fjmig_node_serves"]
        if isinstance(serves, str) or not all(isinstance(g, str) for g in serves):
            raise NodeError(f"{inv.path}: fjmig_node_serves of execution node {name} must be a list of groups")
        unknown = [g for g in serves if g not in inv.groups and g not in inv.children]
        if unknown:
            raise NodeError(f"{inv.path}: execution node {name} serves {', '.join(unknown)}, "
                            "which the inventory has no group of")
        reach = set().union(*(group_hosts(inv, g) for g in serves)) - set(names)
        nodes[name] = Node(
            name=name, address=str(hostvars.get("ansible_host", name)), user=str(hostvars.get("ansible_user", "root")),
            port=int(hostvars.get("ansible_port", 22)), key=str(hostvars["ansible_ssh_private_key_file"]),
            known_hosts=str(hostvars["fjmig_control_known_hosts"]), venv=str(hostvars["fjmig_node_venv"]),
            host_key=str(hostvars["fjmig_node_key"]), host_known_hosts=str(hostvars["fjmig_node_known_hosts"]),
            serves=tuple(serves), reach=frozenset(reach))
    return nodes


def route(nodes: dict[str, Node], hosts: Iterable[str]) -> Node | None:
    """The node a job touching HOSTS runs on; None when there are no nodes or no hosts (it runs on
    the control node) or when no node reaches them all (unroutable() says which)."""
    wanted = set(hosts)
    if not nodes or not wanted:
        return None
    fits = [node for node in nodes.values() if wanted <= node.reach]
    return min(fits, key=lambda node: (len(node.reach), node.name)) if fits else None


def unroutable(nodes: dict[str, Node], jobs: Iterable[Job]) -> list[Job]:
    """The jobs no node can run (none when there are no nodes)."""
    if not nodes:
        return []
    return [job for job in jobs if job.hosts and route(nodes, job.hosts) is None]


def refusal(nodes: dict[str, Node], jobs: list[Job], inventory: Path) -> str:
    """Why a run cannot start: each job without a node, its hosts, and the hosts no node reaches."""
    reached = set().union(*(node.reach for node in nodes.values()))
    lines = [f"no execution node reaches every host of {len(jobs)} job(s) (inventory {inventory}, "
             f"group {NODES_GROUP}); nothing was started:"]
    for job in jobs:
        nobody = sorted(set(job.hosts) - reached)
        why = f"; no node reaches {', '.join(nobody)}" if nobody else "; no single node reaches them all"
        lines.append(f"  {job.step_id}: hosts {', '.join(job.hosts)}{why}")
    lines.append("declare a node that serves their groups (fjmig_node_serves), or run without execution nodes")
    return "\n".join(lines)
