"""The names and ports that the lab, the Pulumi programs and the executor must agree on
(docs/EXECUTION.md): one definition, so that `fjmig run --outputs <(pulumi stack output --json)`
and `--lab` address the same hosts and services."""

from __future__ import annotations

SERVICE_BASE_PORT = 8000
SERVICE_DOMAIN = "fjmig.lab"


def service_port(index: int) -> int:
    """The port of the system at `index` in its department's `systems` list (source and target)."""
    return SERVICE_BASE_PORT + index


def target_host(dept: str, system: str) -> str:
    """The instance (lab host) a moving system lands on."""
    return f"{dept}-{system}"


def service_key(dept: str, system: str) -> str:
    """The key fjmig-svc and the playbooks know a service by."""
    return f"{dept}__{system}"


def service_name(dept: str, system: str) -> str:
    """The name a department's users reach the system by."""
    return f"{system}.{dept}.{SERVICE_DOMAIN}"
