"""The policy pack: each validate function on its own, over every resource of every shipped stack's mock
run, and the pack itself answering the engine's Analyze call over gRPC as `--policy-pack policy` would."""

from __future__ import annotations

import dataclasses
import os
import select
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import ResourceValidationArgs

from infra.addresses import stack_config
from infra.mockrun import Registered, run_shipped_stack, shipped_stacks
from policy.rules import (
    INSTANCE,
    POLICIES,
    SECGROUP_RULE,
    SUBNET,
    VALIDATORS,
    instance_department_tags,
    no_classified_resources,
    no_inbound_from_anywhere,
    no_network_for_everyone,
    subnet_inside_address_space,
)
from tests.support import ROOT

pytestmark = pytest.mark.filterwarnings("ignore:openstack.index:DeprecationWarning")
TAGS = ["department=fj-aic", "level=province", "city=none", "system=registry", "classification=unclassified"]


def args(resource_type: str, props: Mapping[str, Any], name: str = "r",
         config: Mapping[str, Any] | None = None) -> ResourceValidationArgs:
    urn = f"urn:pulumi:s::p::{resource_type}::{name}"
    return ResourceValidationArgs(resource_type=resource_type, props=props, urn=urn, name=name, opts=None,
                                  provider=None, config=config)  # type: ignore[arg-type]


def violations(validate: Any, arguments: ResourceValidationArgs) -> list[str]:
    found: list[str] = []
    validate(arguments, lambda message, urn=None: found.append(message))
    return found


def rule(**props: Any) -> dict[str, Any]:
    return {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "portRangeMin": 22.0,
            "portRangeMax": 22.0, "securityGroupId": "g-id", **props}


@pytest.mark.parametrize(("props", "bad"), [
    (rule(remoteIpPrefix="0.0.0.0/0"), True),
    (rule(remoteIpPrefix="::/0", ethertype="IPv6"), True),
    (rule(remoteIpPrefix="0.0.0.0/0", direction="egress"), False),
    (rule(), True),  # no source at all admits everyone
    (rule(remoteIpPrefix="not-a-cidr"), True),
    (rule(remoteIpPrefix="10.127.250.0/24"), False),
    (rule(remoteGroupId="other-group-id"), False),
])
def test_no_inbound_from_anywhere(props: dict[str, Any], bad: bool) -> None:
    assert bool(violations(no_inbound_from_anywhere, args(SECGROUP_RULE, props))) is bad


@pytest.mark.parametrize(("tags", "message"), [
    (TAGS, None),
    ([t for t in TAGS if not t.startswith("city=")], "without the department tags city"),
    ([], "without the department tags department, level, city"),
    (["department=fj-nowhere", "level=province", "city=none"], "names no department in the migration plans"),
    (["department=fz-aic", "level=province", "city=none"], "differ from the plan of fz-aic (level=city city=fuzhou)"),
])
def test_instance_department_tags(tags: list[str], message: str | None) -> None:
    found = violations(instance_department_tags, args(INSTANCE, {"name": "fj-aic-registry", "tags": tags}))
    assert (found == []) if message is None else (len(found) == 1 and message in found[0])


def test_instance_tag_rule_ignores_other_types() -> None:
    assert violations(instance_department_tags, args(SUBNET, {"cidr": "10.64.0.0/26"})) == []


@pytest.mark.parametrize(("resource_type", "props", "name", "bad"), [
    (INSTANCE, {"name": "fj-aic-registry", "tags": TAGS}, "fj-aic-registry", False),
    (INSTANCE, {"name": "x", "tags": [*TAGS[:3], "classification=classified"]}, "x", True),
    ("openstack:blockstorage/volume:Volume", {"metadata": {"department": "fj-org", "system": "cadre-management"}},
     "v", True),
    ("openstack:blockstorage/volume:Volume", {"name": "fj-org-cadre-management-data"}, "v", True),
    ("openstack:networking/port:Port", {}, "fj-police-police-integrated", True),
    ("openstack:networking/port:Port", {}, "fj-org-talent-service", False),
    ("openstack:identity/project:Project", {"name": "fj-org", "tags": ["department=fj-org"]}, "fj-org", False),
])
def test_no_classified_resources(resource_type: str, props: dict[str, Any], name: str, bad: bool) -> None:
    assert bool(violations(no_classified_resources, args(resource_type, props, name))) is bad


def test_rules_that_need_the_plans_report_a_missing_plans_directory(tmp_path: Path) -> None:
    found = violations(no_classified_resources, args(INSTANCE, {"tags": TAGS}, config={"plans": str(tmp_path / "x")}))
    assert len(found) == 1 and "cannot check against the migration plans" in found[0]


@pytest.mark.parametrize(("cidr", "config", "bad"), [
    ("10.64.0.0/26", None, False),
    ("10.127.0.0/24", None, False),
    ("192.168.0.0/24", None, True),
    ("10.64.0.0/26", {"addressSpaces": ["10.65.0.0/16"]}, True),
    ("10.65.3.0/24", {"addressSpaces": ["10.65.0.0/16"]}, False),
    ("10.64.0.5/26", None, True),  # host bits set: not a network address
    ("0.0.0.0/0", None, True),
])
def test_subnet_inside_address_space(cidr: str, config: dict[str, Any] | None, bad: bool) -> None:
    assert bool(violations(subnet_inside_address_space, args(SUBNET, {"cidr": cidr}, config=config))) is bad


@pytest.mark.parametrize(("resource_type", "props", "bad"), [
    ("openstack:networking/network:Network", {"name": "n", "shared": False}, False),
    ("openstack:networking/network:Network", {"name": "n", "shared": True}, True),
    ("openstack:networking/network:Network", {"name": "n", "external": True}, True),
    ("openstack:networking/rbacPolicyV2:RbacPolicyV2", {"targetTenant": "fj-aic-id"}, False),
    ("openstack:networking/rbacPolicyV2:RbacPolicyV2", {"targetTenant": "*"}, True),
])
def test_no_network_for_everyone(resource_type: str, props: dict[str, Any], bad: bool) -> None:
    assert bool(violations(no_network_for_everyone, args(resource_type, props))) is bad


def test_the_pack_lists_every_rule_once() -> None:
    assert [p.name for p in POLICIES] == list(VALIDATORS)
    manifest = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text(encoding="utf-8"))
    assert manifest["runtime"]["name"] == "python"


def tight_config(stack: str) -> dict[str, Any]:
    """Only this stack's address space and extranet CIDRs: tighter than the pack's default."""
    config = stack_config(stack)
    spaces = [config["addressSpace"], *(s["cidr"] for s in config["extranet"]["segments"])]
    if config["extranet"].get("boundary"):
        spaces.append(config["extranet"]["boundary"]["cidr"])
    return {"addressSpaces": spaces, "plans": "migration_plans"}


def check_all(resources: list[Registered], stack: str, config: Mapping[str, Any] | None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for resource in resources:
        arguments = ResourceValidationArgs(
            resource_type=resource.type, props=resource.inputs, urn=f"urn:pulumi:{stack}::{resource.name}",
            name=resource.name, opts=None, provider=None, config=config)  # type: ignore[arg-type]
        for name, validate in VALIDATORS.items():
            for message in violations(validate, arguments):
                found.setdefault(name, []).append(message)
    return found


@pytest.mark.parametrize("stack", shipped_stacks())
def test_every_resource_of_every_shipped_stack_passes(stack: str) -> None:
    run = run_shipped_stack(stack)
    types = {r.type for r in run.resources}
    assert {INSTANCE, SUBNET, SECGROUP_RULE} <= types  # the rules have something to look at
    assert check_all(run.resources, stack, tight_config(stack)) == {}
    assert check_all(run.resources, stack, None) == {}  # and with the pack's defaults


def tamper(resources: list[Registered], resource_type: str, **changes: Any) -> list[Registered]:
    """The resources with the first one of `resource_type` changed (inputs merged, or renamed)."""
    out, done = [], False
    for resource in resources:
        if not done and resource.type == resource_type:
            name = changes.pop("_name", resource.name)
            resource = dataclasses.replace(resource, name=name, inputs={**resource.inputs, **changes})
            done = True
        out.append(resource)
    return out


@pytest.mark.parametrize(("resource_type", "changes", "policy"), [
    (SECGROUP_RULE, {"remoteIpPrefix": "0.0.0.0/0"}, "no-inbound-from-anywhere"),
    (INSTANCE, {"tags": []}, "instance-department-tags"),
    (INSTANCE, {"_name": "fj-police-police-integrated"}, "no-classified-resources"),
    (SUBNET, {"cidr": "172.16.0.0/24"}, "subnet-inside-address-space"),
    ("openstack:networking/network:Network", {"shared": True}, "no-network-for-everyone"),
])
def test_a_tampered_resource_is_caught(resource_type: str, changes: dict[str, Any], policy: str) -> None:
    run = run_shipped_stack("provincial-cloud")
    tampered = tamper(run.resources, resource_type, **changes)
    found = check_all(tampered, "provincial-cloud", tight_config("provincial-cloud"))
    assert list(found) == [policy]
    assert len(found[policy]) == 1


@pytest.fixture
def pack_channel() -> Any:
    """The policy pack as the Pulumi CLI starts it: a process that prints its gRPC port."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen([sys.executable, str(ROOT / "policy" / "__main__.py")], cwd=ROOT / "policy",
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "the policy pack did not print its port"
        port = int(process.stdout.readline())  # type: ignore[union-attr]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_pack_answers_the_engine(pack_channel: Any) -> None:
    info = pack_channel.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "digital-fujian"
    assert [p.name for p in info.policies] == list(VALIDATORS)
    properties = struct_pb2.Struct()
    properties.update(rule(remoteIpPrefix="0.0.0.0/0"))
    bad = pack_channel.Analyze(analyzer_pb2.AnalyzeRequest(
        type=SECGROUP_RULE, properties=properties, urn="urn:pulumi:s::p::x::open", name="open"), timeout=30)
    assert [d.policyName for d in bad.diagnostics] == ["no-inbound-from-anywhere"]
    properties = struct_pb2.Struct()
    properties.update(rule(remoteIpPrefix="10.127.250.0/24"))
    good = pack_channel.Analyze(analyzer_pb2.AnalyzeRequest(
        type=SECGROUP_RULE, properties=properties, urn="urn:pulumi:s::p::x::ops", name="ops"), timeout=30)
    assert list(good.diagnostics) == []
