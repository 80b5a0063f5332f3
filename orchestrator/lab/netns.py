"""Network namespaces, bridges and veth links, built and torn down in `ip -batch` runs.

Everything the lab creates is named `<lab name>-...` (lab names have no '-'), so that one lab
never touches another lab's namespaces or links, and so that `lab up` can find what a crashed
earlier lab of the same name left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from .topology import EXTRANET_IF, Topology

SBIN = ("/usr/sbin", "/sbin")
TOOLS = {"ip": "iproute2", "sshd": "openssh-server", "rsync": "rsync", "unshare": "util-linux",
         "nsenter": "util-linux", "mount": "mount", "ssh": "openssh-client"}


class NetnsError(Exception):
    """A command that builds or removes the lab failed; the message says which and why."""


def find_tool(tool: str, path: str | None = None) -> str | None:
    """`tool` on PATH or in /usr/sbin, /sbin (often not on a non-login root PATH)."""
    search = path if path is not None else os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN])
    return shutil.which(tool, path=search)


def missing_requirements(path: str | None = None) -> list[str]:
    """What stops the lab from being built here, as sentences (empty when all is well)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the lab needs root (network namespaces, mounts): run it as root, e.g. with sudo")
    missing = sorted(tool for tool in TOOLS if find_tool(tool, path) is None)
    if missing:
        order = ["openssh-server", "rsync", "iproute2", "openssh-client", "util-linux", "mount"]
        packages = sorted({TOOLS[t] for t in missing}, key=order.index)
        problems.append(f"missing {', '.join(missing)}: install with `apt-get install {' '.join(packages)}`")
    if not os.access("/usr/bin/python3", os.X_OK):
        problems.append("missing /usr/bin/python3 (lab hosts run the system python3): apt-get install python3")
    return problems


def run(argv: list[str], *, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise NetnsError(f"{' '.join(argv[:4])} failed: {' / '.join(detail[-3:]) or f'exit {result.returncode}'}")
    return result


def batch(lines: Iterable[str], netns: str | None = None, *, check: bool = True) -> None:
    """Run many `ip` commands in one process (`-force` keeps going after an error on teardown)."""
    argv = ["ip"] + (["-n", netns] if netns else []) + (["-force"] if not check else []) + ["-batch", "-"]
    text = "\n".join(lines) + "\n"
    if text.strip():
        run(argv, stdin=text, check=check)


def create(topo: Topology, owner: str) -> None:
    """Namespaces, bridges and veths in the root namespace; one veth end moved into each host.

    `owner` (no spaces) goes into the extranet bridge's alias: which state directory owns the lab."""
    # `addrgenmode none`: no IPv6 link-local addresses (the lab's addresses all come from
    # 198.18.0.0/15) and none of the neighbour discovery traffic they bring.
    lines = [f"link add {topo.bridge} type bridge", f"link set {topo.bridge} alias {owner}",
             f"link set dev {topo.bridge} addrgenmode none", f"link set {topo.bridge} up",
             f"addr add {topo.control_address}/{topo.prefixlen} dev {topo.bridge}"]
    if topo.hidden_block:  # the control node has no route to the hidden data centers
        lines.append(f"route add unreachable {topo.hidden_block}")
    for net in topo.networks.values():
        lines += [f"link add {net.bridge} type bridge", f"link set dev {net.bridge} addrgenmode none",
                  f"link set {net.bridge} up"]
    for host in topo.hosts.values():
        lines.append(f"netns add {host.netns}")
        lines.append(f"link add {host.veth} type veth peer name {EXTRANET_IF} netns {host.netns}")
        lines.append(f"link set dev {host.veth} addrgenmode none")
        lines.append(f"link set {host.veth} master {topo.bridge} up")
        for link in host.links:
            bridge = topo.networks[link.network].bridge
            lines.append(f"link add {link.veth} type veth peer name {link.interface} netns {host.netns}")
            lines.append(f"link set dev {link.veth} addrgenmode none")
            lines.append(f"link set {link.veth} master {bridge} up")
    batch(lines)


def drop_unreachable(block: str) -> int:
    """Delete the root namespace's `unreachable` routes inside a lab's block (create() adds one for
    hidden data centers; a route is no link, so it does not go with the lab's links)."""
    from ipaddress import IPv4Network

    net = IPv4Network(block)
    result = run(["ip", "-4", "route", "show", "type", "unreachable"], check=False)
    routes = [line.split()[1] for line in result.stdout.splitlines() if len(line.split()) > 1]
    mine = [r for r in routes if r != "default" and IPv4Network(r, strict=False).subnet_of(net)]
    batch([f"route del unreachable {r}" for r in mine], check=False)
    return len(mine)


def list_netns(prefix: str) -> list[str]:
    result = run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix)]


def list_links(prefix: str) -> list[str]:
    result = run(["ip", "-o", "link", "show"], check=False)
    out = []
    for line in result.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) > 1:
            name = parts[1].strip().split("@", 1)[0]
            if name.startswith(prefix):
                out.append(name)
    return out


def netns_pids(names: Iterable[str]) -> dict[int, str]:
    """Pid -> namespace name of every process in the named namespaces (one pass over /proc)."""
    wanted: dict[tuple[int, int], str] = {}
    for name in names:
        with contextlib.suppress(OSError):
            st = os.stat(f"/run/netns/{name}")
            wanted[(st.st_dev, st.st_ino)] = name
    out: dict[int, str] = {}
    if not wanted:
        return out
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                st = os.stat(f"/proc/{entry}/ns/net")
                if (st.st_dev, st.st_ino) in wanted:
                    out[int(entry)] = wanted[(st.st_dev, st.st_ino)]
    return out


def starttime(pid: int) -> str | None:
    """Start time of a live process (None if gone or a zombie): guards against recycled pids."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in {"Z", "X"} else fields[19]


def kill(pids: dict[int, str | None], timeout: float = 3.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process whose start time still matches; returns survivors."""
    alive = {pid: st for pid, st in pids.items() if st is not None and starttime(pid) == st}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while alive and time.monotonic() < deadline:
            alive = {pid: st for pid, st in alive.items() if starttime(pid) == st}
            if alive:
                time.sleep(0.01)
        if not alive:
            break
    return sorted(alive)


def destroy(netns_names: Iterable[str], links: Iterable[str],
            recorded_pids: dict[int, str | None]) -> tuple[dict[str, int], list[str]]:
    """Kill every process in the namespaces (and the recorded ones), delete namespaces and links.

    Returns counts of what was removed and what could not be (empty on success). The hosts' mount
    namespaces go away with their last process, so no mount is left either."""
    names = list(dict.fromkeys(netns_names))
    link_names = list(dict.fromkeys(links))
    pids = dict(recorded_pids)
    for pid in netns_pids(names):
        pids.setdefault(pid, starttime(pid))
    present_ns, present_links = set(list_netns("")), set(list_links(""))
    counts = {"processes": sum(1 for pid, st in pids.items() if st is not None and starttime(pid) == st),
              "netns": len(present_ns & set(names)), "links": len(present_links & set(link_names))}
    survivors = kill(pids)
    batch([f"netns del {name}" for name in names if name in present_ns], check=False)
    present_links = set(list_links(""))
    batch([f"link del {link}" for link in link_names if link in present_links], check=False)
    left = [f"process {pid}" for pid in survivors]
    left += [f"netns {n}" for n in list_netns("") if n in set(names)]
    left += [f"link {link}" for link in list_links("") if link in set(link_names)]
    return counts, left


def cut_from_control(topo: Topology, host: str, *, mend: bool = False) -> None:
    """Drop every packet between the control node and HOST, both ways, as a lost link would: a
    blackhole route to the host in the root namespace and one to the control node in the host's.
    The host still reaches every other host (an office, a target). `mend` removes both."""
    verb = "del" if mend else "add"
    run(["ip", "route", verb, "blackhole", f"{topo.hosts[host].address}/32"], check=not mend)
    run(["ip", "-n", topo.hosts[host].netns, "route", verb, "blackhole", f"{topo.control_address}/32"],
        check=not mend)


def mend_all_cuts(block: str) -> None:
    """Remove the root namespace's blackhole routes into a lab's block (they outlive its bridge)."""
    from ipaddress import IPv4Network

    lab = IPv4Network(block)
    for line in run(["ip", "-4", "route", "show", "type", "blackhole"], check=False).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and IPv4Network(parts[1], strict=False).subnet_of(lab):
            run(["ip", "route", "del", "blackhole", parts[1]], check=False)


def addresses_in(network: str) -> list[tuple[str, str]]:
    """(interface, address) of root-namespace addresses inside `network` (is this lab index taken?)."""
    from ipaddress import IPv4Interface, IPv4Network

    net = IPv4Network(network)
    result = run(["ip", "-o", "-4", "addr", "show"], check=False)
    out = []
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "inet":
            iface = IPv4Interface(parts[3])
            if iface.ip in net or net.overlaps(iface.network):
                out.append((parts[1], str(iface)))
    return out
