"""`lab check`: SSH to every host with paramiko, pinned host keys only (RejectPolicy).

An unknown or changed host key is reported as such and never accepted or saved.
"""

from __future__ import annotations

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


def check_hosts(hosts: list[tuple[str, str, str]], *, known_hosts: Path, key: Path,
                timeout: float = 10.0) -> list[HostCheck]:
    """`hosts`: (name, address, expected hostname); checked concurrently, returned in order."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda h: check_host(*h, known_hosts=known_hosts, key=key, timeout=timeout), hosts))
