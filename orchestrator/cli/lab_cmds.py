"""`fjmig lab up | down | status | check`: the built-in lab (see docs/LAB.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import UsageError, UserError, add_format, console, positive_float, print_json

DEFAULT_PLANS = "migration_plans"


def _index(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 7:
        raise argparse.ArgumentTypeError(f"{text!r} is not a lab index (0-7)")
    return int(text)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from ..lab import DEFAULT_SCALE_MB_PER_GB, DEFAULT_STATE_DIR

    lab = commands.add_parser("lab", help="the built-in lab: real hosts in network namespaces",
                              description="A miniature Digital Fujian on this machine: one network namespace "
                              "with its own sshd per host, the extranet and the private networks of the plans. "
                              "Needs root, iproute2, openssh-server and rsync.")
    sub = lab.add_subparsers(dest="lab_command", metavar="SUBCOMMAND")

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, metavar="DIR",
                            help="where the lab keeps inventory, keys and state (default %(default)s)")

    up = sub.add_parser("up", help="build the lab from the plans",
                        description="Build one host per data-center host, target system, archive, office and the "
                        "sharing platform, with the extranet and every private network; seed data; start sshd and "
                        "services. Rebuilds a lab already in the state directory.")
    up.add_argument("plans", nargs="?", default=DEFAULT_PLANS, metavar="PLANS_DIR",
                    help="plans directory (default %(default)s)")
    common(up)
    up.add_argument("--name", default="fjmig", help="lab name: prefixes namespaces and links (default %(default)s)")
    up.add_argument("--index", type=_index, default=0, metavar="0-7",
                    help="which /18 of 198.18.0.0/15 the lab uses, so labs can coexist (default %(default)s)")
    up.add_argument("--scale", type=positive_float, default=DEFAULT_SCALE_MB_PER_GB, metavar="MB_PER_GB",
                    help="seeded data per GB of a system's size_gb (default %(default)s)")
    up.add_argument("--execution-nodes", action="store_true",
                    help="give each target group an execution node (a host with its own ansible-core and "
                    "ansible-runner) that runs the jobs touching it (docs/EXECUTION.md)")
    up.add_argument("--unroutable", action="append", default=None, metavar="TARGET_GROUP",
                    help="with --execution-nodes: a target group the control node has no route to, reached only "
                    "through its node (repeatable; default: every municipal-dc-* group of the plans)")
    add_format(up)
    up.set_defaults(handler=cmd_up)

    down = sub.add_parser("down", help="remove everything lab up made",
                          description="Kill the lab's processes and remove its namespaces, links, mounts and state "
                          "files. Idempotent.")
    common(down)
    down.add_argument("--name", default=None,
                      help="also clean up a crashed lab of this name when the state directory has no record")
    add_format(down)
    down.set_defaults(handler=cmd_down)

    for verb, helptext in (("disconnect", "cut the link between the control node and a host (both ways)"),
                           ("reconnect", "restore the link that `lab disconnect` cut")):
        cut = sub.add_parser(verb, help=helptext,
                             description=f"{helptext[0].upper()}{helptext[1:]}. The host keeps reaching every "
                             "other host: rehearse a control node that loses its network mid-cutover.")
        cut.add_argument("host", metavar="HOST", help="a lab host (fjmig lab status lists them)")
        common(cut)
        cut.set_defaults(handler=cmd_disconnect, reconnect=verb == "reconnect")

    status = sub.add_parser("status", help="hosts, addresses, sshd state and networks")
    common(status)
    add_format(status)
    status.set_defaults(handler=cmd_status)

    check = sub.add_parser("check", help="SSH to every host with pinned host keys (paramiko, RejectPolicy)",
                           description="Connect to every host, verifying its key against the lab's known_hosts "
                           "(an unknown or changed key is an error, never accepted), and run `hostname`. "
                           "Exit 1 if any host fails.")
    common(check)
    check.add_argument("--known-hosts", type=Path, default=None, metavar="FILE",
                       help="verify against FILE instead of the lab's known_hosts")
    check.add_argument("--timeout", type=positive_float, default=10.0, metavar="SECONDS")
    add_format(check)
    check.set_defaults(handler=cmd_check)

    lab.set_defaults(handler=lambda args: _usage(lab))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    raise UsageError("choose a subcommand: up, down, status or check")


def _lab_error(exc: Exception) -> UserError:
    return UserError(str(exc))


def cmd_up(args: argparse.Namespace) -> int:
    from ..lab import LabError, lab_up
    from ..plans.loader import PlansDirectoryError, load_plans

    try:
        plans = load_plans(args.plans)
    except PlansDirectoryError as exc:
        raise UsageError(str(exc)) from None
    try:
        if args.unroutable and not args.execution_nodes:
            raise UsageError("--unroutable needs --execution-nodes (only a node reaches a hidden data center)")
        state = lab_up(plans, args.state_dir, name=args.name, index=args.index, scale_mb_per_gb=args.scale,
                       execution_nodes=args.execution_nodes, unroutable=args.unroutable)
    except LabError as exc:
        raise _lab_error(exc) from None
    topo = state.topology
    summary = {"name": topo.name, "index": topo.index, "hosts": len(topo.hosts), "networks": len(topo.networks),
               "services": len(topo.services), "seconds": state.seconds, "state_dir": str(state.paths.state_dir),
               "inventory": str(state.paths.inventory), "outputs": str(state.paths.outputs),
               "known_hosts": str(state.paths.known_hosts), "key": str(state.paths.key)}
    if args.format == "json":
        print_json(summary)
        return 0
    out = console()
    out.print(f"lab {topo.name!r} is up: {len(topo.hosts)} hosts, extranet {topo.extranet} + "
              f"{len(topo.networks)} private networks, {len(topo.services)} services, in {state.seconds:.1f} s",
              markup=False)
    for label in ("inventory", "outputs", "known_hosts", "key"):
        out.print(f"  {label:<12} {summary[label]}", markup=False)
    for node, served in topo.nodes.items():
        out.print(f"  node         {node} serves {', '.join(served)}", markup=False)
    if topo.hidden:
        out.print(f"  no route from here to {', '.join(topo.hidden)} ({topo.hidden_block}): only their nodes "
                  "reach them", markup=False)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from ..lab import LabError, lab_down

    try:
        removed = lab_down(args.state_dir, name=args.name)
    except LabError as exc:
        raise _lab_error(exc) from None
    if args.format == "json":
        print_json(removed)
    elif removed["name"] is None:
        console().print(f"no lab in {args.state_dir}: nothing to do", markup=False)
    else:
        console().print(f"lab {removed['name']!r} is down: removed {removed['netns']} namespaces, "
                        f"{removed['links']} links, {removed['processes']} processes", markup=False)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from ..lab import LabError, lab_status

    try:
        status = lab_status(args.state_dir)
    except LabError as exc:
        raise _lab_error(exc) from None
    if args.format == "json":
        print_json(status)
    else:
        _print_status(status)
    return 0 if all(h["sshd"] == "running" for h in status["hosts"]) else 1


def _print_status(status: dict[str, Any]) -> None:
    """Plain aligned columns (greppable, and never truncated the way a narrow table would be)."""
    out = console()
    held = f"; held by process {status['held_by']} for one run" if status.get("held_by") else ""
    out.print(f"lab {status['name']!r} (index {status['index']}, {status['block']}) in {status['state_dir']}{held}",
              markup=False)
    width = max(len(h["name"]) for h in status["hosts"])
    out.print(f"\n{'HOST':<{width}}  {'ROLE':<8}  {'ADDRESS':<15}  {'SSHD':<7}  GROUPS / PRIVATE", markup=False)
    for host in status["hosts"]:
        private = " ".join(f"{p['interface']}={p['address']}" for p in host["private"])
        out.print(f"{host['name']:<{width}}  {host['role']:<8}  {host['address']:<15}  {host['sshd']:<7}  "
                  f"{','.join(host['groups'])}{'  ' + private if private else ''}",
                  style=None if host["sshd"] == "running" else "red", markup=False)
    width = max(len(n["name"]) for n in status["networks"])
    out.print(f"\n{'NETWORK':<{width}}  {'PLAN CIDR':<18}  {'LAB BLOCK':<18}  {'BRIDGE':<12}  MEMBERS", markup=False)
    for net in status["networks"]:
        members = f"all {net['members']} hosts" if isinstance(net["members"], int) else " ".join(net["members"])
        present = "" if net["present"] else "  (bridge MISSING)"
        out.print(f"{net['name']:<{width}}  {net['plan_cidr'] or '-':<18}  {net['lab_cidr']:<18}  {net['bridge']:<12}  "
                  f"{members}{present}", markup=False)


def cmd_disconnect(args: argparse.Namespace) -> int:
    from ..lab import LabError, lab_disconnect

    try:
        lab_disconnect(args.state_dir, args.host, reconnect=args.reconnect)
    except LabError as exc:
        raise _lab_error(exc) from None
    done = "reconnected to" if args.reconnect else "disconnected from"
    console().print(f"{args.host} {done} the control node", markup=False)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from ..lab import LabError, lab_check

    try:
        results = lab_check(args.state_dir, timeout=args.timeout, known_hosts=args.known_hosts)
    except LabError as exc:
        raise _lab_error(exc) from None
    failed = [r for r in results if not r.ok]
    if args.format == "json":
        print_json({"ok": not failed, "hosts": [r.__dict__ for r in results]})
    else:
        out = console()
        for result in results:
            style = None if result.ok else "red"
            out.print(f"{'ok  ' if result.ok else 'FAIL'} {result.host:<40} {result.address:<15} {result.detail}",
                      style=style, markup=False)
        out.print(f"{len(results) - len(failed)} of {len(results)} hosts answered with their pinned key", markup=False)
    return 1 if failed else 0
