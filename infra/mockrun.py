"""Run a stack's program under Pulumi's mock runtime: no CLI, no cloud.

The tests use it, and so can a reviewer: `python -m infra.mockrun provincial-cloud` lists what
the stack would register and prints its outputs. Mocks echo inputs back as outputs (ids are
`<name>-id`) and answer the few lookups the program makes; they validate nothing, so the tests
check CIDRs, ports and quotas themselves (docs/INFRA.md says what the mock tests prove).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime

from .addresses import stack_config
from .cloud.credentials import Credentials
from .errors import InfraError
from .settings import NAMESPACE, PROJECT_ROOT, parse_settings, read_config

PROJECT = "digital-fujian"
DEPLOYER_USER_ID = "deployer-user-id"
DEPLOYER_PROJECT_ID = "admin-project-id"
RBAC_QUOTA = 10
"""Neutron's default rbac_policy quota, as the mocks report it for the deploying project."""


@dataclass(frozen=True)
class Registered:
    """One resource the program registered: its type token, logical name and inputs."""

    type: str
    name: str
    inputs: Mapping[str, Any]
    provider: str
    id: str


@dataclass
class MockRun:
    stack: str
    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def of_type(self, token: str) -> list[Registered]:
        return [r for r in self.resources if r.type == token]

    def named(self, token: str, name: str) -> Registered:
        matches = [r for r in self.of_type(token) if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources of type {token} named {name}")
        return matches[0]

    def counts(self) -> Counter[str]:
        return Counter(r.type for r in self.resources)


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs as outputs and record every registration and lookup."""

    def __init__(self, run: MockRun) -> None:
        self.run = run

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id = f"{args.name}-id"
        inputs = dict(args.inputs)
        self.run.resources.append(Registered(args.typ, args.name, inputs, args.provider or "", resource_id))
        return resource_id, inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        arguments = dict(args.args)
        self.run.calls.append((args.token, arguments))
        token = args.token
        if token == "openstack:identity/getAuthScope:getAuthScope":  # noqa: S105 - an invoke, not a secret
            return {"id": "deployer", "userId": DEPLOYER_USER_ID, "projectId": DEPLOYER_PROJECT_ID}
        if token == "openstack:networking/getQuotaV2:getQuotaV2":  # noqa: S105
            return {"id": arguments["projectId"], "projectId": arguments["projectId"], "rbacPolicy": RBAC_QUOTA}
        if token == "openstack:identity/getRole:getRole":  # noqa: S105
            return {"id": f"role-{arguments['name']}-id", "name": arguments["name"]}
        if token == "openstack:networking/getNetwork:getNetwork":  # noqa: S105
            return {"id": f"{arguments['name']}-network-id", "name": arguments["name"], "external": True}
        raise NotImplementedError(f"the mocks do not answer {args.token}")


def config_values(config: Mapping[str, Any]) -> dict[str, str]:
    """`set_all_config` wants `<project>:<key>` -> string; objects and lists go as JSON."""
    return {f"{NAMESPACE}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def stack_settings_config(stack: str, overrides: Mapping[str, Any] | None = None,
                          root: Path = PROJECT_ROOT) -> dict[str, Any]:
    config = stack_config(stack, root)
    config.update(overrides or {})
    return config


def run_stack(stack: str, overrides: Mapping[str, Any] | None = None, root: Path = PROJECT_ROOT,
              creds: Credentials | None = None) -> MockRun:
    """Run the program of `Pulumi.<stack>.yaml` (with config `overrides`) under mocks, to completion.
    Credentials default to `OS_*` variables (the scoped providers get just the project id)."""
    from .program import build

    run = MockRun(stack)
    config = stack_settings_config(stack, overrides, root)
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(RecordingMocks(run), project=PROJECT, stack=stack, preview=False)
    pulumi.runtime.set_all_config(config_values(config))
    settings = parse_settings(read_config(), root)  # through pulumi.Config, as under `pulumi up`

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        return pulumi.Output.from_input(build(settings, creds or Credentials(None, None))).apply(run.outputs.update)

    program()
    return run


def shipped_stacks(root: Path = PROJECT_ROOT) -> list[str]:
    """The stacks whose config ships in the repository (`Pulumi.<stack>.yaml`)."""
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


@cache
def run_shipped_stack(stack: str) -> MockRun:
    """`run_stack` of a shipped stack as it is, once per process (callers must not mutate the result)."""
    return run_stack(stack)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m infra.mockrun STACK", file=sys.stderr)
        return 2
    try:
        run = run_stack(args[0])
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for token, count in sorted(run.counts().items()):
        print(f"{count:4d}  {token}")
    print(json.dumps(run.outputs, indent=2, sort_keys=True, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
