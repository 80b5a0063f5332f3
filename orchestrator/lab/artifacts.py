"""The files the executor reads (docs/EXECUTION.md): inventory, outputs, known_hosts, hosts files.

Pure functions of the topology and the state directory's paths, so that their shape is unit
tested without root. A real deployment produces the same files from its CMDB and Pulumi.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from .topology import Topology

TRANSFER_KEY = "/root/.ssh/fjmig_transfer"
NODE_KEY = "/root/.ssh/fjmig_node"
"""The execution nodes' own key for the hosts they serve (authorized on every lab host)."""
HOST_KNOWN_HOSTS = "/root/.ssh/known_hosts"
NAMES_FILE = "/etc/hosts"


def ssh_common_args(known_hosts: Path) -> str:
    """Strict host key checking against the lab's pinned keys only, for ansible and plain ssh."""
    return " ".join([
        "-o StrictHostKeyChecking=yes",
        f"-o UserKnownHostsFile={shlex.quote(str(known_hosts))}",
        "-o GlobalKnownHostsFile=/dev/null",
        "-o IdentitiesOnly=yes",
        "-o BatchMode=yes",
    ])


def inventory(topo: Topology, *, key: Path, known_hosts: Path, service_ctl: Path,
              node_env: Path | None = None) -> dict[str, Any]:
    """Ansible YAML inventory: hosts with their extranet address, groups per department, target, role;
    execution nodes (docs/EXECUTION.md) with the groups each serves."""
    hosts: dict[str, dict[str, Any]] = {}
    children: dict[str, dict[str, Any]] = {}
    for host in topo.hosts.values():
        variables: dict[str, Any] = {"ansible_host": host.address, "fjmig_role": host.role}
        if host.dept:
            variables["fjmig_dept"] = host.dept
        if host.role == "office":
            variables["fjmig_private_links"] = {topo.networks[link.network].id: link.interface
                                                for link in host.links}
            variables["fjmig_names_file"] = NAMES_FILE
        if host.name in topo.nodes:
            variables.update(fjmig_node_serves=list(topo.nodes[host.name]), fjmig_node_venv=str(node_env),
                             fjmig_node_key=NODE_KEY, fjmig_node_known_hosts=HOST_KNOWN_HOSTS)
        hosts[host.name] = variables
        for group in host.groups:
            children.setdefault(group, {"hosts": {}})["hosts"][host.name] = None
    return {"all": {
        "vars": {
            "ansible_user": "root",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_private_key_file": str(key),
            "ansible_ssh_common_args": ssh_common_args(known_hosts),
            "ansible_host_key_checking": True,
            "fjmig_service_ctl": str(service_ctl),
            "fjmig_transfer_key": TRANSFER_KEY,
            "fjmig_known_hosts": HOST_KNOWN_HOSTS,
            "fjmig_lab": topo.name,
            "fjmig_control_known_hosts": str(known_hosts),
        },
        "hosts": hosts,
        "children": dict(sorted(children.items())),
    }}


def outputs(topo: Topology, milestones: list[str] | None = None) -> dict[str, Any]:
    """The shape of `pulumi stack output --json` for the Pulumi programs, plus the lab's services.

    `milestones`, as the stacks export it, lists the infra.yaml milestones delivered: the lab
    stands in for all of the target infrastructure, so it delivers every one."""
    hosts = topo.hosts
    targets = {
        key: {"host": s.target_host, "address": hosts[s.target_host].address, "port": s.port}
        for key, s in topo.services.items() if s.target_host
    }
    archives = {dept: {"host": name, "address": hosts[name].address} for dept, name in topo.archives.items()}
    services = {key: {"port": s.port, "name": s.name, "source_address": s.source_address}
                for key, s in topo.services.items()}
    return {"targets": targets, "archives": archives,
            "platform": {"host": "sharing-platform", "address": hosts["sharing-platform"].address},
            "services": services, "milestones": sorted(milestones or [])}


def known_hosts(topo: Topology, public_keys: dict[str, str]) -> str:
    """One line per host: its name and every address it has, then its pinned key."""
    lines = []
    for host in topo.hosts.values():
        names = [host.address, host.name] + [link.address.split("/")[0] for link in host.links]
        lines.append(f"{','.join(names)} {public_keys[host.name]}")
    return "\n".join(lines) + "\n"


def office_hosts_file(topo: Topology, dept: str, office: str) -> str:
    lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{office}", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"# fjmig lab: where {office} reaches {dept}'s systems (rewritten at cutover and rollback)"]
    lines += [f"{address}\t{name}" for name, address in sorted(topo.office_names(dept).items())]
    return "\n".join(lines) + "\n"
