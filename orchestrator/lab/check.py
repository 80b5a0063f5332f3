"""`lab check`: SSH to every host with paramiko, pinned host keys only (RejectPolicy).

An unknown or changed host key is reported as such and never accepted or saved. An execution
node is checked too: its own environment runs `ansible-runner worker --worker-info`, and the hosts
the control node has no route to answer through it (OpenSSH on the node, its own key, strict).
"""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import paramiko


@dataclass(frozen=True)
class HostCheck:
    host: str
    address: str
    ok: bool
    detail: str


def check_host(host: str, address: str, expected_hostname: str, *, known_hosts: Path, key: Path,
               timeout: float = 10.0) -> HostCheck:
    """Connect, verify the host key against `known_hosts`, run `hostname`, compare."""
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(address, port=22, username="root", key_filename=str(key), look_for_keys=False,
                       allow_agent=False, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
        _, stdout, _ = client.exec_command("hostname", timeout=timeout)
        name = stdout.read().decode(errors="replace").strip()
        status = stdout.channel.recv_exit_status()
    except paramiko.BadHostKeyException as exc:
        return HostCheck(host, address, False, f"host key CHANGED: it offered {exc.key.get_fingerprint().hex()}, "
                         f"known_hosts pins {exc.expected_key.get_fingerprint().hex()} (refused)")
    except paramiko.AuthenticationException as exc:
        return HostCheck(host, address, False, f"authentication failed: {exc}")
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            return HostCheck(host, address, False, "host key UNKNOWN: not pinned in known_hosts (refused)")
        return HostCheck(host, address, False, f"ssh: {exc}")
    except (TimeoutError, OSError, EOFError) as exc:
        return HostCheck(host, address, False, f"unreachable: {exc}")
    finally:
        client.close()
    if status != 0 or name != expected_hostname:
        return HostCheck(host, address, False, f"`hostname` said {name!r} (exit {status}), expected "
                         f"{expected_hostname!r}")
    return HostCheck(host, address, True, f"hostname {name}")


@dataclass(frozen=True)
class NodeSpec:
    """An execution node to check: its environment, its key and pins, and the hosts only it reaches."""

    name: str
    address: str
    venv: str
    key: str
    known_hosts: str
    behind: tuple[tuple[str, str, str], ...]
    """(name, address, expected hostname) of the hosts the control node has no route to."""


def check_node(node: NodeSpec, *, known_hosts: Path, key: Path, timeout: float = 10.0) -> list[HostCheck]:
    """The node's environment, then each host behind it through it."""
    client = paramiko.SSHClient()
    out: list[HostCheck] = []
    try:
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(node.address, port=22, username="root", key_filename=str(key), look_for_keys=False,
                       allow_agent=False, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)

        def run(argv: list[str]) -> tuple[int, str]:
            _, stdout, stderr = client.exec_command(shlex.join(argv), timeout=timeout * 3)
            text = stdout.read().decode(errors="replace").strip()
            status = stdout.channel.recv_exit_status()
            return status, text or stderr.read().decode(errors="replace").strip()

        status, info = run([f"{node.venv.rstrip('/')}/bin/ansible-runner", "worker", "--worker-info"])
        version = next((part.split(":", 1)[1].strip(" '}") for part in info.split(",")
                        if "runner_version" in part), "")
        out.append(HostCheck(f"{node.name} (ansible-runner worker)", node.address, status == 0 and bool(version),
                             f"ansible-runner {version} in {node.venv}" if status == 0 else f"worker: {info[-200:]}"))
        for host, address, expected in node.behind:
            status, name = run(["ssh", "-i", node.key, "-o", "StrictHostKeyChecking=yes",
                                "-o", f"UserKnownHostsFile={node.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                                "-o", f"ConnectTimeout={timeout:.0f}", f"root@{address}", "hostname"])
            ok = status == 0 and name == expected
            out.append(HostCheck(host, address, ok, f"hostname {name} (through {node.name})" if ok
                                 else f"through {node.name}: {name[-200:] or f'exit {status}'}"))
    except (paramiko.SSHException, OSError, EOFError) as exc:
        out.append(HostCheck(node.name, node.address, False, f"node unreachable: {exc}"))
    finally:
        client.close()
    return out


def check_hosts(hosts: list[tuple[str, str, str]], *, known_hosts: Path, key: Path,
                timeout: float = 10.0) -> list[HostCheck]:
    """`hosts`: (name, address, expected hostname); checked concurrently, returned in order."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda h: check_host(*h, known_hosts=known_hosts, key=key, timeout=timeout), hosts))
