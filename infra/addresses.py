"""The address plan: each department's subnet, kept in a reviewed file (`infra/addresses.yaml`).

Allocations are never computed at deploy time: adding or removing a department must not move
another department's addresses, so the program only *reads* the file and fails when a department
in scope has no allocation. `python -m infra.addresses allocate --stack STACK` proposes subnets for
the departments that have none (first free aligned block, never touching existing entries) and,
with `--write`, adds them to the file for review in a pull request.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Network, ip_network
from pathlib import Path
from typing import Any

import yaml

from orchestrator.plans.loader import PlanSet

from .errors import InfraError
from .layout import required_prefix
from .plans import departments_in_scope, load_checked
from .settings import PROJECT_ROOT, Settings, parse_settings

Allocations = dict[str, dict[str, IPv4Network]]
"""scope -> department id -> subnet"""

HEADER = """\
# The reviewed address plan of the Digital Fujian tenancies: scope -> department -> subnet.
# Entries never move once deployed. Add departments with
#   python -m infra.addresses allocate --stack <stack> --write
# and review the diff; remove an entry only after its tenancy is destroyed.
"""


def load_allocations(path: Path) -> Allocations:
    """Read the address file; a missing file is an empty plan."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InfraError(f"{path}: cannot read the address plan: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping) or data.get("version") != 1 or not isinstance(data.get("scopes", {}), Mapping):
        raise InfraError(f"{path}: expected `version: 1` and `scopes: {{<scope>: {{<department>: <cidr>}}}}`")
    out: Allocations = {}
    for scope, entries in (data.get("scopes") or {}).items():
        if not isinstance(entries, Mapping):
            raise InfraError(f"{path}: scopes.{scope} must map department ids to CIDRs")
        out[str(scope)] = {}
        for dept, cidr in entries.items():
            try:
                net = ip_network(str(cidr), strict=True)
            except ValueError as exc:
                raise InfraError(f"{path}: scopes.{scope}.{dept}: {exc}") from None
            if not isinstance(net, IPv4Network):
                raise InfraError(f"{path}: scopes.{scope}.{dept}: only IPv4 is planned")
            out[str(scope)][str(dept)] = net
    return out


def dump_allocations(allocations: Allocations) -> str:
    body = {"version": 1, "scopes": {scope: {d: str(n) for d, n in sorted(entries.items())}
                                     for scope, entries in sorted(allocations.items())}}
    return HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)


def private_networks(plans: PlanSet) -> list[tuple[str, IPv4Network]]:
    """Every private-network CIDR in the plans (they coexist with the tenancies during migration)."""
    return [(f"{p.id}/{n.id}", n.cidr) for p in plans.departments.values() for n in p.private_networks]


def _reserved(plans: PlanSet, allocations: Allocations, settings: Settings) -> list[tuple[str, IPv4Network]]:
    taken = [(f"private network {name}", cidr) for name, cidr in private_networks(plans)]
    taken += [(f"extranet segment {s.name}", s.cidr) for s in settings.extranet.segments]
    if settings.extranet.boundary:
        taken.append(("the boundary platform network", settings.extranet.boundary.cidr))
    taken += [(f"{scope}/{dept}", net) for scope, entries in allocations.items() for dept, net in entries.items()]
    return taken


def check_allocations(plans: PlanSet, allocations: Allocations, settings: Settings,
                      path: Path) -> dict[str, IPv4Network]:
    """The subnets of the departments in scope; raise InfraError on a missing, misplaced or too small one."""
    mine = allocations.get(settings.scope, {})
    problems: list[str] = []
    missing = []
    result: dict[str, IPv4Network] = {}
    taken = _reserved(plans, allocations, settings)
    for plan in departments_in_scope(plans, settings.scope):
        net = mine.get(plan.id)
        if net is None:
            missing.append(plan.id)
            continue
        result[plan.id] = net
        if not net.subnet_of(settings.address_space):
            problems.append(f"{plan.id}: {net} is outside addressSpace {settings.address_space}")
        need = required_prefix(len(plan.systems))
        if net.prefixlen > need:
            problems.append(f"{plan.id}: {net} is too small for {len(plan.systems)} systems (needs a /{need}); "
                            "re-allocating moves its addresses, plan it as a migration")
        for name, other in taken:
            if name != f"{settings.scope}/{plan.id}" and net.overlaps(other):
                problems.append(f"{plan.id}: {net} overlaps {name} ({other})")
    if missing:
        problems.append(f"no subnet for {', '.join(missing)} in scope {settings.scope}: run "
                        f"`python -m infra.addresses allocate --stack <stack> --write` and review the diff")
    if problems:
        raise InfraError(f"{path}: the address plan does not fit the plans:\n" + "\n".join(problems))
    return result


def check_extranet(plans: PlanSet, settings: Settings) -> None:
    """The extranet segments and the boundary network must not collide with any private network."""
    own = [(f"extranet segment {s.name}", s.cidr) for s in settings.extranet.segments]
    if settings.extranet.boundary:
        own.append(("the boundary platform network", settings.extranet.boundary.cidr))
    clashes = [f"{name} {net} overlaps private network {pname} {pnet}"
               for name, net in own for pname, pnet in private_networks(plans) if net.overlaps(pnet)]
    if clashes:
        raise InfraError("config digital-fujian:extranet: " + "; ".join(clashes))


def _free_block(space: IPv4Network, prefix: int, taken: Iterable[IPv4Network]) -> IPv4Network | None:
    used = list(taken)
    for candidate in space.subnets(new_prefix=prefix):
        if not any(candidate.overlaps(t) for t in used):
            return candidate
    return None


def propose(plans: PlanSet, allocations: Allocations, settings: Settings) -> dict[str, IPv4Network]:
    """Subnets for the departments in scope that have none; existing entries are never touched."""
    mine = allocations.get(settings.scope, {})
    taken = [net for _, net in _reserved(plans, allocations, settings)]
    new: dict[str, IPv4Network] = {}
    for plan in departments_in_scope(plans, settings.scope):
        if plan.id in mine:
            continue
        block = _free_block(settings.address_space, required_prefix(len(plan.systems)), taken)
        if block is None:
            raise InfraError(f"addressSpace {settings.address_space} has no free /{required_prefix(len(plan.systems))} "
                             f"for {plan.id}")
        new[plan.id] = block
        taken.append(block)
    return new


def stack_config(stack: str, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The `digital-fujian:*` values of `Pulumi.<stack>.yaml`, without the namespace."""
    path = root / f"Pulumi.{stack}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InfraError(f"{path}: cannot read the stack config: {exc}") from None
    config = data.get("config") or {}
    return {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("digital-fujian:")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.addresses", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    alloc = sub.add_parser("allocate", help="propose subnets for departments that have none")
    alloc.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    alloc.add_argument("--plans", help="plans directory (default: the stack's digital-fujian:plans)")
    alloc.add_argument("--file", help="address file (default: the stack's digital-fujian:addresses)")
    alloc.add_argument("--write", action="store_true", help="add the proposals to the file")
    args = parser.parse_args(argv)
    try:
        raw = stack_config(args.stack)
        if args.plans:
            raw["plans"] = str(Path(args.plans).resolve())
        if args.file:
            raw["addresses"] = str(Path(args.file).resolve())
        settings = parse_settings(raw)
        plans = load_checked(settings.plans)
        allocations = load_allocations(settings.addresses)
        new = propose(plans, allocations, settings)
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not new:
        print(f"every department in {settings.scope} has a subnet")
        return 0
    for dept, net in new.items():
        print(f"{settings.scope}: {dept}: {net}")
    if args.write:
        allocations.setdefault(settings.scope, {}).update(new)
        settings.addresses.write_text(dump_allocations(allocations), encoding="utf-8")
        print(f"wrote {settings.addresses}: review and commit it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
