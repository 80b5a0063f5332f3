"""The components follow Pulumi's convention, under the mock runtime: `Component(name, args, opts)`,
children named from `name` and parented to the component, all of them created before
`register_outputs`; the grant that moved from `Extranet` into `DepartmentTenancy` keeps its URN by an
alias. (What the real engine makes of them is in tests/real.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi.runtime
import pytest

from infra.addresses import stack_config
from infra.cloud import DepartmentTenancy, DepartmentTenancyArgs, Roles
from infra.cloud.credentials import Credentials
from infra.mockrun import MockRun, RecordingMocks, config_values
from infra.network import BoundaryAccessPlatform, BoundaryAccessPlatformArgs, Extranet, ExtranetArgs
from infra.program import plan_stack
from infra.settings import parse_settings

pytestmark = pytest.mark.filterwarnings("ignore:openstack.index:DeprecationWarning")
STACK = "provincial-cloud"


def under_mocks(body: Callable[[], Any]) -> Any:
    """Run `body` as a Pulumi program under the mocks; returns what it returned, resolved."""
    run = MockRun(STACK)
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(RecordingMocks(run), project="digital-fujian", stack=STACK, preview=False)
    pulumi.runtime.set_all_config(config_values(stack_config(STACK)))
    result: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> None:
        result["value"] = body()

    program()
    return result["value"], run


class Counting:
    """Records how many children a component had when it called register_outputs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.at_register: dict[str, int] = {}
        original = pulumi.ComponentResource.register_outputs

        def register_outputs(component: pulumi.ComponentResource, outputs: Any) -> None:
            self.at_register[component._name] = len(component._childResources)
            original(component, outputs)

        monkeypatch.setattr(pulumi.ComponentResource, "register_outputs", register_outputs)


def children(component: pulumi.Resource) -> list[pulumi.Resource]:
    return list(component._childResources)


def urn_of(output: Any) -> str:
    return asyncio.get_event_loop().run_until_complete(output.future())


def test_two_extranets_do_not_collide_and_register_their_outputs_last(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = parse_settings(stack_config(STACK))
    counting = Counting(monkeypatch)
    (first, second), run = under_mocks(lambda: (Extranet("east", ExtranetArgs(settings.extranet)),
                                                Extranet("west", ExtranetArgs(settings.extranet))))
    for component, name in ((first, "east"), (second, "west")):
        kids = children(component)
        assert len(kids) == 5 * len(settings.extranet.segments)  # network, subnet, QoS policy, two limits
        assert all(k._name.startswith(f"{name}-") for k in kids)
        assert counting.at_register[name] == len(kids)  # nothing created after register_outputs
    names = [r.name for r in run.resources]
    assert len(names) == len(set(names))


def test_a_tenancy_is_named_from_its_name_and_finishes_before_register_outputs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = parse_settings(stack_config(STACK))
    layout = plan_stack(settings)[0][0]
    counting = Counting(monkeypatch)

    def body() -> tuple[DepartmentTenancy, Extranet]:
        extranet = Extranet("extranet", ExtranetArgs(settings.extranet))
        roles = Roles("operator-role", "deployer-role", "deployer-user")
        tenancy = DepartmentTenancy(layout.dept, DepartmentTenancyArgs(
            layout, roles, extranet.segments[layout.segment.name].network.id, settings.image, settings.key_pair,
            Credentials(None, None), extranet=extranet))
        return tenancy, extranet

    (tenancy, extranet), _ = under_mocks(body)
    kids = children(tenancy)
    # `archive-<dept>` keeps the name the executor knows its archive host by (orchestrator.plans.naming).
    assert kids and all(k._name.startswith((layout.dept, f"archive-{layout.dept}")) for k in kids)
    assert counting.at_register[layout.dept] == len(kids)
    assert set(tenancy.targets) == {f"{layout.dept}/{h.system.id}" for h in layout.system_hosts if h.system}
    (grant,) = [k for k in kids if k._type == "openstack:networking/rbacPolicyV2:RbacPolicyV2"]
    assert grant._name == f"{layout.dept}-extranet-{layout.segment.name}"
    (alias,) = grant._aliases
    # the URN it had as `extranet-<segment>-<dept>` under the Extranet component
    parent = urn_of(extranet.urn)
    assert parent.endswith("digital-fujian:network:Extranet::extranet")
    assert urn_of(alias) == (f"{parent.removesuffix('::extranet')}$openstack:networking/rbacPolicyV2:RbacPolicyV2::"
                             f"extranet-{layout.segment.name}-{layout.dept}")


def test_the_boundary_platform_names_its_children_from_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = parse_settings(stack_config(STACK))
    boundary = settings.extranet.boundary
    assert boundary is not None and settings.external_network
    counting = Counting(monkeypatch)

    def body() -> BoundaryAccessPlatform:
        extranet = Extranet("extranet", ExtranetArgs(settings.extranet))
        return BoundaryAccessPlatform("gate", BoundaryAccessPlatformArgs(
            boundary, settings.external_network or "", extranet.segments[boundary.segment]))

    platform, _ = under_mocks(body)
    kids = children(platform)
    assert {k._name for k in kids} >= {"gate-router", "gate-net", "gate-subnet", "gate-extranet", "gate-access"}
    assert all(k._name.startswith("gate-") for k in kids)
    assert counting.at_register["gate"] == len(kids)
