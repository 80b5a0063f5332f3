"""What the real tier asserts on the cloud itself, through openstacksdk (not through Pulumi's word)."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_network
from typing import Any

from infra.addresses import stack_config
from infra.cloud.deployer import rbac_quota_needed
from infra.layout import TenancyLayout
from infra.program import plan_stack
from infra.settings import parse_settings

NEUTRON_KINDS = ("networks", "subnets", "routers", "ports", "security_groups", "qos_policies", "rbac_policies")


def layouts(stack: str, project: Any) -> list[TenancyLayout]:
    """The tenancies the program builds for `stack`, from the project copy's plans and config."""
    settings = parse_settings(stack_config(stack, project), project)
    return plan_stack(settings)[0]


def _one(items: Iterable[Any], what: str) -> Any:
    found = list(items)
    assert len(found) == 1, f"{len(found)} {what}"
    return found[0]


def check_tenancies(conn: Any, stack: str, project: Any) -> dict[str, str]:
    """Each department's project, tagged; its network, subnet, router, ports and groups in THAT project;
    no rule from anywhere; quotas as computed. Returns department -> project id."""
    net = conn.network
    projects = {}
    for layout in layouts(stack, project):
        dept = layout.dept
        proj = _one(conn.identity.projects(name=dept), f"projects named {dept}")
        assert set(proj.tags) == set(layout.tags), (dept, proj.tags)
        projects[dept] = proj.id
        network = _one(net.networks(name=f"{dept}-net"), f"networks {dept}-net")
        subnet = _one(net.subnets(name=f"{dept}-subnet"), f"subnets {dept}-subnet")
        router = _one(net.routers(name=f"{dept}-router"), f"routers {dept}-router")
        assert (network.project_id, subnet.project_id, router.project_id) == (proj.id,) * 3, dept
        assert subnet.network_id == network.id and ip_network(subnet.cidr) == layout.cidr
        assert router.external_gateway_info["enable_snat"] is False
        groups = {g.name: g for g in net.security_groups(project_id=proj.id)}
        assert set(layout.groups) <= set(groups), (dept, sorted(groups))
        for group in groups.values():
            for rule in group.security_group_rules:
                if rule["direction"] == "ingress":
                    assert rule["remote_ip_prefix"] not in ("0.0.0.0/0", "::/0"), (group.name, rule)
                    if group.name != "default":
                        assert rule["remote_ip_prefix"] is not None, (group.name, rule)
        for host in layout.hosts:
            port = _one(net.ports(name=host.name), f"ports {host.name}")
            assert port.project_id == proj.id and port.fixed_ips[0]["ip_address"] == str(host.address)
            assert {groups[g].id for g in host.groups} == set(port.security_group_ids)
        quota = net.get_quota(proj.id)
        q = layout.quotas
        assert (quota.networks, quota.subnets, quota.routers, quota.ports, quota.security_groups,
                quota.security_group_rules, quota.floating_ips) == (
            q.networks, q.subnets, q.routers, q.ports, q.security_groups, q.security_group_rules, 0), dept
        compute = conn.compute.get_quota_set(proj.id)
        assert (compute.instances, compute.cores, compute.ram) == (q.instances, q.cores, q.ram_mb), dept
    return projects


def check_extranet(conn: Any, stack: str, project: Any, projects: dict[str, str]) -> None:
    """Provider networks with the plan's VLAN and a QoS bandwidth limit; RBAC only to the intended projects."""
    config = stack_config(stack, project)
    net = conn.network
    intended: dict[str, set[str]] = {}
    for layout in layouts(stack, project):
        intended.setdefault(layout.segment.name, set()).add(projects[layout.dept])
    for segment in config["extranet"]["segments"]:
        network = _one(net.networks(name=f"extranet-{segment['name']}"), f"extranet-{segment['name']}")
        assert (network.provider_network_type, network.provider_physical_network,
                network.provider_segmentation_id) == ("vlan", config["extranet"]["physicalNetwork"], segment["vlan"])
        assert not network.is_shared
        assert network.qos_policy_id
        policy = net.get_qos_policy(network.qos_policy_id)
        limits = {(r["direction"], r["max_kbps"]) for r in policy.rules if r["type"] == "bandwidth_limit"}
        assert limits == {("egress", segment["bandwidthMbps"] * 1000), ("ingress", segment["bandwidthMbps"] * 1000)}
        grants = list(net.rbac_policies(object_id=network.id))
        assert all(g.action == "access_as_external" and g.object_type == "network" for g in grants)
        assert {g.target_project_id for g in grants} == intended.get(segment["name"], set()), segment["name"]


def check_deployer_quota(conn: Any, grants: int, reserve: int = 20) -> None:
    """The deploying project's rbac_policy quota covers this stack's grants plus the reserve."""
    admin = conn.current_project_id
    quota = conn.network.get_quota(admin).rbac_policies
    assert quota == -1 or quota >= rbac_quota_needed(grants, reserve, 10), quota


def snapshot(conn: Any, project_ids: Iterable[str]) -> dict[str, set[str]]:
    """The ids of every Neutron resource the stack's projects own, and of the projects themselves."""
    owners = set(project_ids)
    out: dict[str, set[str]] = {kind: set() for kind in NEUTRON_KINDS}
    for kind in NEUTRON_KINDS:
        for item in getattr(conn.network, kind)():
            if item.project_id in owners and not (kind == "security_groups" and item.name == "default"):
                out[kind].add(item.id)
    out["projects"] = {p.id for p in conn.identity.projects() if p.id in owners}
    return out


def leftovers(conn: Any, state_resources: list[dict[str, Any]], project_ids: Iterable[str]) -> list[str]:
    """What is still in the cloud of a destroyed stack: any resource whose id its state had, anything
    owned by its projects (Neutron's automatic `default` group aside), any extranet network or QoS policy."""
    ids = {r.get("id") for r in state_resources if r.get("custom") and r.get("id")}
    found = []
    for kind in NEUTRON_KINDS:
        for item in getattr(conn.network, kind)():
            if item.id in ids:
                found.append(f"{kind} {item.id} ({getattr(item, 'name', '')})")
    for project in conn.identity.projects():
        if project.id in ids:
            found.append(f"project {project.name}")
    for group in conn.identity.groups():
        if group.id in ids:
            found.append(f"group {group.name}")
    remaining = snapshot(conn, project_ids)
    found += [f"{kind} {i}" for kind, items in remaining.items() for i in items]
    found += [f"network {n.name}" for n in conn.network.networks() if n.name.startswith("extranet-")]
    found += [f"qos policy {q.name}" for q in conn.network.qos_policies() if q.name.startswith("extranet-")]
    return found
