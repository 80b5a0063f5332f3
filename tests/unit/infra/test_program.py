"""The Pulumi programs under Pulumi's mock runtime, for every shipped stack (no CLI, no cloud).

The mocks echo inputs and validate nothing, so these tests check what the program must get right: resource
types and counts per department, CIDRs, quotas, security rules, nothing for classified systems,
the exported targets, and the extranet's segments, QoS and RBAC.
"""

from __future__ import annotations

import math
from collections import Counter
from ipaddress import ip_address, ip_network
from typing import Any

import pytest
import yaml

from infra.addresses import load_allocations, stack_config
from infra.mockrun import MockRun, Registered, run_shipped_stack, shipped_stacks
from orchestrator.plans.loader import load_plans
from orchestrator.plans.model import DepartmentPlan
from tests.support import ROOT

T = {
    "project": "openstack:identity/project:Project",
    "group": "openstack:identity/groupV3:GroupV3",
    "role": "openstack:identity/roleAssignment:RoleAssignment",
    "provider": "pulumi:providers:openstack",
    "compute_quota": "openstack:compute/quotaSetV2:QuotaSetV2",
    "network_quota": "openstack:networking/quotaV2:QuotaV2",
    "volume_quota": "openstack:blockstorage/quoteSetV3:QuoteSetV3",
    "network": "openstack:networking/network:Network",
    "subnet": "openstack:networking/subnet:Subnet",
    "router": "openstack:networking/router:Router",
    "router_interface": "openstack:networking/routerInterface:RouterInterface",
    "rbac": "openstack:networking/rbacPolicyV2:RbacPolicyV2",
    "secgroup": "openstack:networking/secGroup:SecGroup",
    "rule": "openstack:networking/secGroupRule:SecGroupRule",
    "port": "openstack:networking/port:Port",
    "instance": "openstack:compute/instance:Instance",
    "volume": "openstack:blockstorage/volume:Volume",
    "attach": "openstack:compute/volumeAttach:VolumeAttach",
    "qos": "openstack:networking/qosPolicy:QosPolicy",
    "qos_rule": "openstack:networking/qosBandwidthLimitRule:QosBandwidthLimitRule",
    "tenancy": "digital-fujian:cloud:DepartmentTenancy",
    "extranet": "digital-fujian:network:Extranet",
    "boundary": "digital-fujian:network:BoundaryAccessPlatform",
}
PLANS = ROOT / "migration_plans"
STACKS = shipped_stacks()
pytestmark = pytest.mark.filterwarnings("ignore:openstack.index:DeprecationWarning")
ALL_PLANS = load_plans(PLANS)


def expected_departments(scope: str) -> list[DepartmentPlan]:
    """Restated from the plan format: the plan's target, and for municipal-dc-<city> the department's city."""
    out = []
    for plan in ALL_PLANS.departments.values():
        if scope.startswith("municipal-dc-"):
            if plan.target == "municipal-dc" and plan.department.city == scope.removeprefix("municipal-dc-"):
                out.append(plan)
        elif plan.target == scope:
            out.append(plan)
    return sorted(out, key=lambda p: p.id)


def moving(plan: DepartmentPlan) -> list[tuple[int, Any]]:
    return [(i, s) for i, s in enumerate(plan.systems)
            if s.status == "active" and s.classification == "unclassified"]


def has_zombies(plan: DepartmentPlan) -> bool:
    return any(s.status == "zombie" for s in plan.systems)


def tag(resource: Registered, key: str) -> str | None:
    for item in resource.inputs.get("tags") or []:
        if item.startswith(f"{key}="):
            return item.split("=", 1)[1]
    return (resource.inputs.get("metadata") or {}).get(key)


def department_of(resource: Registered, run: MockRun) -> str | None:
    """Which department a resource belongs to, from its tags or the project it references."""
    by_tag = tag(resource, "department")
    if by_tag:
        return by_tag
    inputs = resource.inputs
    for key in ("projectId", "targetTenant", "tenantId"):
        if isinstance(inputs.get(key), str) and inputs[key].removesuffix("-id") in ALL_PLANS.departments:
            return inputs[key].removesuffix("-id")
    if resource.type == T["router_interface"] and str(inputs.get("routerId", "")).endswith("-router-id"):
        dept = inputs["routerId"].removesuffix("-router-id")
        return dept if dept in ALL_PLANS.departments else None
    if resource.type == T["group"]:
        return resource.name.removesuffix("-operators")
    if resource.type == T["attach"]:
        return tag(run.named(T["instance"], inputs["instanceId"].removesuffix("-id")), "department")
    if resource.type == T["rule"]:
        group = run.named(T["secgroup"], inputs["securityGroupId"].removesuffix("-id"))
        return tag(group, "department")
    return None


@pytest.fixture(scope="module", params=STACKS)
def stack(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], MockRun]:
    return request.param, stack_config(request.param), run_shipped_stack(request.param)


def test_every_target_group_ships_a_stack() -> None:
    assert {"provincial-cloud", "social-enterprise-cloud"} <= set(STACKS)
    assert any(s.startswith("municipal-dc-") for s in STACKS)
    for name in STACKS:
        assert stack_config(name)["scope"] == name
        raw = yaml.safe_load((ROOT / f"Pulumi.{name}.yaml").read_text(encoding="utf-8"))
        # Credentials come from OS_CLOUD / clouds.yaml / OS_*, never from a file in the repository.
        assert all(key.startswith("digital-fujian:") for key in raw["config"]), name
        assert "encryptionsalt" not in raw and "secure" not in repr(raw)


def test_every_department_lands_on_exactly_one_stack() -> None:
    landed = Counter(d for name in STACKS for d in run_shipped_stack(name).outputs["tenancies"])
    assert set(landed) == set(ALL_PLANS.departments)
    assert set(landed.values()) == {1}


def test_resources_by_type_and_count_per_department(stack: tuple[str, dict[str, Any], MockRun]) -> None:
    name, _, run = stack
    departments = expected_departments(name)
    assert departments, f"{name} builds no tenancy"
    counts: dict[str | None, Counter[str]] = {}
    for resource in run.resources:
        counts.setdefault(department_of(resource, run), Counter())[resource.type] += 1
    for plan in departments:
        systems = moving(plan)
        hosts = len(systems) + has_zombies(plan)
        shared = any(s.share for _, s in systems)
        groups = 1 + len(systems) + shared
        expected = Counter({
            T["project"]: 1, T["group"]: 1, T["role"]: 2, T["provider"]: 1,
            T["compute_quota"]: 1, T["network_quota"]: 1, T["volume_quota"]: 1,
            T["network"]: 1, T["subnet"]: 1, T["router"]: 1, T["router_interface"]: 1, T["rbac"]: 1,
            T["secgroup"]: groups, T["port"]: hosts, T["instance"]: hosts, T["volume"]: hosts, T["attach"]: hosts,
        })
        rules = len(stack[1]["operationsCidrs"]) + len(systems) * len(stack[1]["clientCidrs"])
        if shared:
            rules += len(stack[1]["sharingPlatformCidrs"]) * (1 + sum(s.share for _, s in systems))
        expected[T["rule"]] = rules
        assert counts.pop(plan.id) == expected, plan.id
    # What is left belongs to no department: the components, the extranet and the boundary platform.
    rest = counts.pop(None)
    assert not counts, f"resources for departments outside {name}: {sorted(counts)}"
    segments = stack[1]["extranet"]["segments"]
    boundary = stack[1]["extranet"].get("boundary")
    expected_rest = Counter({T["tenancy"]: len(departments), T["extranet"]: 1, T["network"]: len(segments),
                             T["subnet"]: len(segments), T["qos"]: len(segments), T["qos_rule"]: 2 * len(segments),
                             T["network_quota"]: 1})  # the deploying project's rbac_policy quota
    if boundary:
        expected_rest.update({T["boundary"]: 1, T["router"]: 1, T["network"]: 1, T["subnet"]: 1, T["port"]: 1,
                              T["router_interface"]: 2, T["secgroup"]: 1, T["rule"]: len(boundary["flows"])})
    assert rest == expected_rest


def test_nothing_for_classified_or_police_sensitive_systems(stack: tuple[str, dict[str, Any], MockRun]) -> None:
    _, _, run = stack
    excluded = [(p.id, s.id) for p in ALL_PLANS.departments.values() for s in p.systems
                if s.classification != "unclassified"]
    assert excluded, "the sample plans have classified systems"
    for resource in run.resources:
        text = repr(resource.inputs) + resource.name
        for dept, system in excluded:
            assert f"{dept}-{system}" not in text
            assert not (tag(resource, "department") == dept and tag(resource, "system") == system)
        assert tag(resource, "classification") in (None, "unclassified")


def test_subnets_are_disjoint_inside_the_address_space(stack: tuple[str, dict[str, Any], MockRun]) -> None:
    name, config, run = stack
    space = ip_network(config["addressSpace"])
    allocations = load_allocations(ROOT / "infra" / "addresses.yaml")[name]
    private = [n.cidr for p in ALL_PLANS.departments.values() for n in p.private_networks]
    tenant = {department_of(r, run): ip_network(r.inputs["cidr"]) for r in run.of_type(T["subnet"])
              if tag(r, "department")}
    assert set(tenant) == {p.id for p in expected_departments(name)}
    for dept, net in tenant.items():
        assert net == allocations[dept]
        assert net.subnet_of(space), (dept, net)
        assert not any(net.overlaps(p) for p in private), (dept, net)
    others = [ip_network(r.inputs["cidr"]) for r in run.of_type(T["subnet"]) if not tag(r, "department")]
    everything = [*tenant.values(), *others]
    for i, a in enumerate(everything):
        for b in everything[i + 1:]:
            assert not a.overlaps(b), (a, b)
    for other in others:
        assert not any(other.overlaps(p) for p in private)


def test_subnets_of_all_stacks_are_disjoint() -> None:
    nets = [ip_network(r.inputs["cidr"]) for name in STACKS for r in run_shipped_stack(name).of_type(T["subnet"])]
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            assert not a.overlaps(b), (a, b)


def test_quotas_cover_instances_and_volumes_with_the_stated_headroom(
        stack: tuple[str, dict[str, Any], MockRun]) -> None:
    _, config, run = stack
    headroom = float(config.get("quotaHeadroom", 0.5))
    flavors = {f["name"]: f for f in config["flavors"]}
    for plan in expected_departments(stack[0]):
        mine = [r for r in run.resources if department_of(r, run) == plan.id]
        instances = [r for r in mine if r.type == T["instance"]]
        volumes = [r for r in mine if r.type == T["volume"]]
        groups = [r for r in mine if r.type == T["secgroup"]]
        rules = [r for r in mine if r.type == T["rule"]]
        ports = [r for r in mine if r.type == T["port"]]
        used = {
            "instances": len(instances),
            "cores": sum(flavors[i.inputs["flavorName"]]["vcpus"] for i in instances),
            "ram": sum(flavors[i.inputs["flavorName"]]["ramMb"] for i in instances),
            "volumes": len(volumes),
            "gigabytes": sum(v.inputs["size"] for v in volumes),
            "port": len(ports) + 2,  # plus the router interface and the DHCP port
            "security_group": len(groups) + 1,  # plus the project's default group
            "security_group_rule": len(rules) + 2 * len(groups) + 4,  # default egress and default group rules
            "network": 1, "subnet": 1, "router": 1,
        }
        quota: dict[str, float] = {}
        for kind in ("compute_quota", "network_quota", "volume_quota"):
            (resource,) = [r for r in mine if r.type == T[kind]]
            assert resource.inputs["projectId"] == f"{plan.id}-id"
            quota.update({k: v for k, v in resource.inputs.items() if k != "projectId"})
        for key, need in used.items():
            camel = {"security_group": "securityGroup", "security_group_rule": "securityGroupRule"}.get(key, key)
            assert quota[camel] == math.ceil(need * (1 + headroom)), (plan.id, key)
            assert quota[camel] >= need


def test_instances_volumes_and_ports_follow_the_systems(stack: tuple[str, dict[str, Any], MockRun]) -> None:
    name, config, run = stack
    allocations = load_allocations(ROOT / "infra" / "addresses.yaml")[name]
    flavors = sorted(config["flavors"], key=lambda f: f.get("maxDataGb", math.inf))
    for plan in expected_departments(name):
        base = allocations[plan.id].network_address
        provider = f"::{plan.id}-scoped::{plan.id}-scoped-id"
        for index, system in moving(plan):
            host = f"{plan.id}-{system.id}"
            instance = run.named(T["instance"], host)
            assert instance.inputs["name"] == host
            assert instance.provider.endswith(provider)
            assert instance.inputs["imageName"] == config["image"]
            smallest = next(f for f in flavors if system.data.size_gb <= f.get("maxDataGb", math.inf))
            assert instance.inputs["flavorName"] == smallest["name"]
            for key, value in (("department", plan.id), ("level", plan.department.level),
                               ("city", plan.department.city or "none"), ("system", system.id)):
                assert tag(instance, key) == value
            assert instance.inputs["networks"] == [{"port": f"{host}-id"}]
            port = run.named(T["port"], host)
            assert port.inputs["fixedIps"] == [{"subnetId": f"{plan.id}-subnet-id",
                                                "ipAddress": str(base + 10 + index)}]
            groups = {f"{plan.id}-baseline-id", f"{host}-id"} | ({f"{plan.id}-sharing-id"} if system.share else set())
            assert set(port.inputs["securityGroupIds"]) == groups
            volume = run.named(T["volume"], f"{host}-data")
            assert volume.inputs["size"] >= system.data.size_gb
            assert volume.provider.endswith(provider)
            attach = run.named(T["attach"], f"{host}-data")
            assert (attach.inputs["instanceId"], attach.inputs["volumeId"]) == (f"{host}-id", f"{host}-data-id")
        zombies = sum(s.data.size_gb for s in plan.systems if s.status == "zombie")
        archives = [v for v in run.of_type(T["volume"]) if v.name == f"archive-{plan.id}-volume"]
        assert len(archives) == (1 if has_zombies(plan) else 0)
        if archives:
            assert archives[0].inputs["size"] >= zombies
            attach = run.named(T["attach"], f"archive-{plan.id}-volume")
            assert attach.inputs["instanceId"] == f"archive-{plan.id}-id"


def test_security_rules(stack: tuple[str, dict[str, Any], MockRun]) -> None:
    name, config, run = stack
    ops = {ip_network(c) for c in config["operationsCidrs"]}
    clients = {ip_network(c) for c in config["clientCidrs"]}
    platform = {ip_network(c) for c in config["sharingPlatformCidrs"]}
    for rule in run.of_type(T["rule"]):
        inputs = rule.inputs
        assert inputs["direction"] == "ingress"
        assert ip_network(inputs["remoteIpPrefix"]).prefixlen > 0, rule.name
        group = inputs["securityGroupId"].removesuffix("-id")
        source = ip_network(inputs["remoteIpPrefix"])
        ports = (inputs["portRangeMin"], inputs["portRangeMax"])
        if group.endswith("-baseline"):
            assert ports == (22, 22) and source in ops
        elif group.endswith("-sharing"):
            assert source in platform
        elif group == "boundary-access":
            flows = {(f["protocol"], f["port"], f["from"]) for f in config["extranet"]["boundary"]["flows"]}
            assert (inputs["protocol"], ports[0], inputs["remoteIpPrefix"]) in flows
        else:
            assert source in clients
    for plan in expected_departments(name):
        systems = moving(plan)
        for index, system in systems:
            rules = [r for r in run.of_type(T["rule"]) if r.inputs["securityGroupId"] == f"{plan.id}-{system.id}-id"]
            assert {(r.inputs["portRangeMin"], r.inputs["portRangeMax"]) for r in rules} == {(8000 + index,) * 2}
        shared_ports = {8000 + i for i, s in systems if s.share}
        sharing = [r for r in run.of_type(T["rule"]) if r.inputs["securityGroupId"] == f"{plan.id}-sharing-id"]
        assert {r.inputs["portRangeMin"] for r in sharing} == ({22} | shared_ports if shared_ports else set())


def test_exported_targets_are_exactly_the_systems_that_move(stack: tuple[str, dict[str, Any], MockRun]) -> None:
    name, _, run = stack
    allocations = load_allocations(ROOT / "infra" / "addresses.yaml")[name]
    expected = {f"{p.id}/{s.id}": (p, i, s) for p in expected_departments(name) for i, s in moving(p)}
    targets = run.outputs["targets"]
    assert set(targets) == set(expected)
    for key, (plan, index, system) in expected.items():
        entry = targets[key]
        assert entry == {"host": f"{plan.id}-{system.id}", "address": entry["address"], "port": 8000 + index}
        assert ip_address(entry["address"]) in allocations[plan.id]
    addresses = [t["address"] for t in targets.values()]
    assert len(set(addresses)) == len(addresses)
    archives = run.outputs["archives"]
    assert set(archives) == {p.id for p in expected_departments(name) if has_zombies(p)}
    assert all(a["host"] == f"archive-{d}" for d, a in archives.items())


def test_exported_tenancies_and_milestones(stack: tuple[str, dict[str, Any], MockRun]) -> None:
    name, config, run = stack
    allocations = load_allocations(ROOT / "infra" / "addresses.yaml")[name]
    tenancies = run.outputs["tenancies"]
    assert set(tenancies) == {p.id for p in expected_departments(name)}
    for dept, entry in tenancies.items():
        assert entry["project_id"] == f"{dept}-id"
        assert entry["network"] == f"{dept}-net"
        assert entry["subnet_cidr"] == str(allocations[dept])
    assert run.outputs["milestones"] == config.get("milestones", [name])
    assert set(run.outputs["milestones"]) <= set(ALL_PLANS.milestones)
    assert name in run.outputs["milestones"] or not name.startswith("municipal-dc-")


def test_project_tags_and_operator_roles(stack: tuple[str, dict[str, Any], MockRun]) -> None:
    name, _, run = stack
    for plan in expected_departments(name):
        project = run.named(T["project"], plan.id)
        assert set(project.inputs["tags"]) >= {f"department={plan.id}", f"level={plan.department.level}",
                                               f"city={plan.department.city or 'none'}"}
        roles = [r for r in run.of_type(T["role"]) if r.inputs["projectId"] == f"{plan.id}-id"]
        assert {(r.inputs.get("groupId"), r.inputs["roleId"]) for r in roles if "groupId" in r.inputs} == {
            (f"{plan.id}-operators-id", "role-member-id")}
        provider = run.named(T["provider"], f"{plan.id}-scoped")
        assert provider.inputs["tenantId"] == f"{plan.id}-id"


def test_extranet_segments_qos_and_rbac(stack: tuple[str, dict[str, Any], MockRun]) -> None:
    name, config, run = stack
    extranet = config["extranet"]
    for segment in extranet["segments"]:
        network = run.named(T["network"], f"extranet-{segment['name']}")
        assert network.inputs["segments"] == [{"networkType": "vlan", "physicalNetwork": extranet["physicalNetwork"],
                                               "segmentationId": segment["vlan"]}]
        # `external: true` would make Neutron grant every project access: RBAC grants it per project.
        assert "external" not in network.inputs
        assert network.inputs["shared"] is False
        assert network.inputs["qosPolicyId"] == f"extranet-{segment['name']}-qos-id"
        limits = [r for r in run.of_type(T["qos_rule"])
                  if r.inputs["qosPolicyId"] == f"extranet-{segment['name']}-qos-id"]
        assert {(r.inputs["direction"], r.inputs["maxKbps"]) for r in limits} == {
            ("egress", segment["bandwidthMbps"] * 1000), ("ingress", segment["bandwidthMbps"] * 1000)}
    assert not any(n.inputs.get("shared") or n.inputs.get("external") for n in run.of_type(T["network"]))
    rbac = run.of_type(T["rbac"])
    assert len(rbac) == len(expected_departments(name))
    for plan in expected_departments(name):
        (grant,) = [r for r in rbac if r.inputs["targetTenant"] == f"{plan.id}-id"]
        (segment,) = [s for s in extranet["segments"] if s["kind"] == "horizontal"
                      and s["level"] == plan.department.level and s.get("city") == plan.department.city]
        assert grant.inputs["action"] == "access_as_external"
        assert grant.inputs["objectType"] == "network"
        assert grant.inputs["objectId"] == f"extranet-{segment['name']}-id"
        router = run.named(T["router"], f"{plan.id}-router")
        assert router.inputs["externalNetworkId"] == f"extranet-{segment['name']}-id"


def test_boundary_platform_joins_the_government_network_and_the_extranet() -> None:
    config = stack_config("provincial-cloud")
    run = run_shipped_stack("provincial-cloud")
    boundary = config["extranet"]["boundary"]
    router = run.named(T["router"], "boundary-router")
    assert router.inputs["externalNetworkId"] == f"{config['externalNetwork']}-network-id"
    uplink = run.named(T["port"], "boundary-extranet")
    assert uplink.inputs["fixedIps"][0]["ipAddress"] == boundary["extranetAddress"]
    assert uplink.inputs["networkId"] == f"extranet-{boundary['segment']}-id"
    interfaces = [r for r in run.of_type(T["router_interface"]) if r.inputs["routerId"] == "boundary-router-id"]
    assert {r.inputs.get("portId") or r.inputs.get("subnetId") for r in interfaces} == {
        "boundary-extranet-id", "boundary-subnet-id"}
    rules = [r for r in run.of_type(T["rule"]) if r.inputs["securityGroupId"] == "boundary-access-id"]
    assert len(rules) == len(boundary["flows"])
    assert ("openstack:networking/getNetwork:getNetwork", {"name": config["externalNetwork"], "external": True}) \
        in run.calls


def test_qos_policies_carry_no_tags_and_their_segment_s_networks_do(
        stack: tuple[str, dict[str, Any], MockRun]) -> None:
    """Neutron 21 rejects the provider's replace-all tags call on QoS policies (the real tier found it)."""
    _, config, run = stack
    for segment in config["extranet"]["segments"]:
        tags = {f"extranet={segment['kind']}", f"level={segment['level']}", f"city={segment.get('city') or 'none'}"}
        qos = run.named(T["qos"], f"extranet-{segment['name']}-qos")
        assert not qos.inputs.get("tags")
        assert all(t in qos.inputs["description"] for t in tags)
        assert set(run.named(T["network"], f"extranet-{segment['name']}").inputs["tags"]) == tags
        assert set(run.named(T["subnet"], f"extranet-{segment['name']}-subnet").inputs["tags"]) == tags


def test_neutron_resources_are_the_department_s_by_tenant_id_and_hosts_use_its_scoped_provider(
        stack: tuple[str, dict[str, Any], MockRun]) -> None:
    """A provider's tenant_id is ignored with clouds.yaml credentials (the real tier found it): Neutron
    resources go through the deploying provider with tenant_id; Nova and Cinder take no project id."""
    name, _, run = stack
    for plan in expected_departments(name):
        project = f"{plan.id}-id"
        owned = [r for r in run.resources if r.type in (T["network"], T["subnet"], T["router"], T["port"],
                                                         T["secgroup"], T["rule"])
                 and department_of(r, run) == plan.id]
        assert owned and all(r.inputs.get("tenantId") == project for r in owned)
        assert all("-scoped::" not in r.provider for r in owned)
        for resource in run.resources:
            if resource.type in (T["instance"], T["volume"], T["attach"]) and department_of(resource, run) == plan.id:
                assert f"::{plan.id}-scoped::" in resource.provider, resource.name


def test_the_deploying_project_s_rbac_quota_is_raised_for_the_grants(
        stack: tuple[str, dict[str, Any], MockRun]) -> None:
    """Neutron's default rbac_policy quota (10) is too small for provincial-cloud's grants plus the
    project's own (the real tier found it): raised to grants + reserve, never lowered."""
    _, config, run = stack
    (quota,) = [r for r in run.of_type(T["network_quota"]) if r.name == "deployer-rbac-quota"]
    assert quota.inputs["projectId"] == "admin-project-id"
    grants = len(run.of_type(T["rbac"]))
    assert quota.inputs["rbacPolicy"] == max(10, grants + config.get("rbacQuotaReserve", 20))
