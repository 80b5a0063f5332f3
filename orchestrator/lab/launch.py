#!/usr/bin/env python3
"""Boot every lab host from one process: the fast equivalent of, per host,

    ip netns exec NS unshare --mount --uts --propagation private sh -c \
        'mount --bind .../srv /srv; mount --bind .../root /root; ...; hostname H; sshd ...; fjmig-svc start ...'

One child is forked per host. It joins the host's network namespace, unshares mount and UTS
namespaces, makes every mount private, remounts /sys for its network namespace (as
`ip netns exec` does), bind-mounts the host's /srv and /root, the lab's shared /root/.ssh
(read-only), a tmpfs over /run (sshd's privilege separation directory, and /run/tmp, the
TMPDIR of every SSH session: a host's temporary files go with it) and, for an
office, its hosts file over /etc/hosts; then it sets the host name, brings up its interfaces and
their addresses (rtnetlink, what `ip addr add` and `ip link set up` send), starts sshd, and starts
the host's services with fjmig-svc's own code. No shell is
involved, so no name from a plan is ever parsed by one. That saves about eight program starts per
host, which were most of `lab up`'s time.

Input: JSON on stdin (see `orchestrator/lab/__init__.py`). Output: JSON on stdout,
`{"<host>": "ok" | "<error>"}`. Standard library only; runs with the system python3.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
import struct
import subprocess
import sys
import traceback
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _b(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
           f"mount {source or fstype} on {target}")


def bind(source: str, target: str, read_only: bool = False) -> None:
    mount(source, target, None, MS_BIND)
    if read_only:
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def enter(netns_path: str) -> None:
    """Join the network namespace; new private mount and UTS namespaces; /sys for this netns."""
    fd = os.open(netns_path, os.O_RDONLY)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns {netns_path}")
    finally:
        os.close(fd)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare mount+uts")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if _libc.umount2(b"/sys", MNT_DETACH) == 0:
        with contextlib.suppress(OSError):  # /sys stays hidden rather than show the root namespace's devices
            mount("sysfs", "/sys", "sysfs", 0)


NETLINK_ROUTE, RTM_NEWLINK, RTM_NEWADDR = 0, 16, 20
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR, IFF_UP, IFA_ADDRESS, IFA_LOCAL = 2, 0x1, 1, 2


def _netlink(sock: socket.socket, kind: int, flags: int, body: bytes, seq: int) -> None:
    """Send one rtnetlink request and wait for its acknowledgement (raise on error)."""
    sock.send(struct.pack("=LHHLL", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0) + body)
    while True:
        reply = sock.recv(65536)
        offset = 0
        while offset + 16 <= len(reply):
            length, msg_type, _, msg_seq, _ = struct.unpack_from("=LHHLL", reply, offset)
            if msg_type == NLMSG_ERROR and msg_seq == seq:
                (error,) = struct.unpack_from("=i", reply, offset + 16)
                if error:
                    raise OSError(-error, os.strerror(-error))
                return
            offset += max(length, 16)


def configure(links: list[dict[str, Any]]) -> None:
    """`ip link set lo up`, `ip addr add A/P dev IF`, `ip link set IF up` over rtnetlink: the same
    kernel requests without starting `ip` once per host."""
    with open("/proc/sys/net/ipv6/conf/all/disable_ipv6", "w") as ipv6:  # this namespace's: IPv4 only
        ipv6.write("1")
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        seq = 0
        for link in [{"name": "lo"}, *links]:
            index = socket.if_nametoindex(link["name"])
            if link.get("address"):
                address, prefix = link["address"].split("/")
                packed = socket.inet_aton(address)
                body = struct.pack("=BBBBi", socket.AF_INET, int(prefix), 0, 0, index)
                body += struct.pack("=HH", 8, IFA_LOCAL) + packed + struct.pack("=HH", 8, IFA_ADDRESS) + packed
                seq += 1
                try:
                    _netlink(sock, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, seq)
                except OSError as exc:
                    raise OSError(exc.errno, f"address {link['address']} on {link['name']}: {exc.strerror}") from None
            seq += 1
            _netlink(sock, RTM_NEWLINK, 0, struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP), seq)


def boot_host(spec: dict[str, Any], common: dict[str, Any], service: Any) -> None:
    enter(spec["netns_path"])
    bind(spec["srv"], "/srv")
    bind(spec["root"], "/root")
    bind(common["ssh_dir"], "/root/.ssh", read_only=True)
    mount("fjmig-run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64m")
    os.mkdir("/run/sshd", 0o755)
    os.mkdir("/run/tmp", 0o700)  # SSH sessions' TMPDIR (sshd_config SetEnv); only root logs in
    if spec.get("hosts_file"):
        bind(spec["hosts_file"], "/etc/hosts")
    socket.sethostname(spec["hostname"])
    configure(spec["links"])
    result = subprocess.run([common["sshd"], "-f", common["sshd_config"], "-E", "/run/sshd.log",
                             *[arg for option in spec["sshd_options"] for arg in ("-o", option)]],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"sshd: {result.stderr.strip() or result.returncode}")
    for entry in spec.get("services", []):
        service.start(entry["key"], entry["dir"], int(entry["port"]))


def _load_service(path: str) -> Any:
    from importlib.machinery import SourceFileLoader
    from importlib.util import module_from_spec, spec_from_loader

    loader = SourceFileLoader("fjmig_svc", path)
    spec = spec_from_loader("fjmig_svc", loader)
    assert spec is not None
    module = module_from_spec(spec)
    loader.exec_module(module)
    return module


def main() -> int:
    plan = json.load(sys.stdin)
    common = plan["common"]
    service = _load_service(common["service_ctl"])
    children: dict[str, tuple[int, int]] = {}
    for spec in plan["hosts"]:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            message = b"ok"
            code = 0
            try:
                boot_host(spec, common, service)
            except subprocess.CalledProcessError as exc:
                message, code = f"{exc.cmd[0]}: {(exc.stderr or '').strip()}".encode(), 1
            except Exception as exc:  # reported to the parent, which reports it to the user
                message, code = (str(exc) or traceback.format_exc()).encode(), 1
            os.write(write_end, message[:4000])
            os._exit(code)
        os.close(write_end)
        children[spec["name"]] = (pid, read_end)
    results = {}
    for name, (pid, read_end) in children.items():
        os.waitpid(pid, 0)
        with os.fdopen(read_end, "rb") as pipe:
            results[name] = pipe.read().decode(errors="replace") or "no report"
    json.dump(results, sys.stdout)
    return 0 if all(v == "ok" for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
