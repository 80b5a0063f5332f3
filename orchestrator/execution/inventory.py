"""Where steps run: source hosts from an Ansible inventory, targets from Pulumi stack outputs.

A real deployment passes its own inventory and `pulumi stack output --json` (one file per
stack, several allowed); the lab writes the same two files. The inventory is read through
`ansible-inventory --list`, so every inventory format Ansible accepts works.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FjmigError


class InventoryError(FjmigError):
    """The inventory or outputs cannot be read; the message says which file and why."""


@dataclass
class Inventory:
    path: Path
    hostvars: dict[str, dict[str, Any]]
    groups: dict[str, list[str]]
    outputs: dict[str, Any] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    """Group -> its child groups (a group's hosts are its own and its children's)."""

    def address(self, host: str) -> str | None:
        vars_ = self.hostvars.get(host)
        if vars_ is None:
            return None
        return str(vars_.get("ansible_host", host))

    def has(self, host: str) -> bool:
        return host in self.hostvars

    def target(self, gid: str) -> dict[str, Any] | None:
        return self.outputs.get("targets", {}).get(gid)

    def service(self, gid: str) -> dict[str, Any]:
        return self.outputs.get("services", {}).get(gid, {})

    def archive(self, dept: str, target_group: str) -> dict[str, Any] | None:
        archives = self.outputs.get("archives", {})
        return archives.get(dept) or archives.get(target_group)

    def delivered_milestones(self) -> set[str]:
        """The infra.yaml milestones the stacks (or the lab) say they deliver: `milestones` in
        `pulumi stack output --json`, a list of ids (or a mapping keyed by id)."""
        value = self.outputs.get("milestones") or []
        return {str(m) for m in value}

    def platform(self) -> dict[str, Any] | None:
        platform = self.outputs.get("platform")
        if platform:
            return platform
        if self.has("sharing-platform"):
            return {"host": "sharing-platform", "address": self.address("sharing-platform")}
        return None


def _ansible_inventory_binary() -> str:
    """The ansible-inventory of fjmig's own environment first (`.venv/bin/fjmig` runs without the
    virtualenv on PATH, as `make demo` does), then PATH's."""
    beside = Path(sys.executable).parent / "ansible-inventory"
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("ansible-inventory")
    if not found:
        raise InventoryError("ansible-inventory not found beside fjmig's Python or on PATH: "
                             "install ansible-core (pip install -e .)")
    return found


def load_inventory(inventory: Path, outputs: list[Path]) -> Inventory:
    """Read the inventory with ansible-inventory and merge the outputs files (later wins)."""
    if not inventory.exists():
        raise InventoryError(f"{inventory}: no such inventory")
    proc = subprocess.run(  # (an inventory no plugin can parse is an error, not an empty inventory)
        [_ansible_inventory_binary(), "-i", str(inventory), "--list"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True"},
    )
    if proc.returncode != 0:
        raise InventoryError(f"{inventory}: ansible-inventory failed: {proc.stderr.strip()[-500:]}")
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise InventoryError(f"{inventory}: unreadable ansible-inventory output ({exc})") from None
    hostvars = data.get("_meta", {}).get("hostvars", {})
    groups: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    for name, group in data.items():
        if name != "_meta" and isinstance(group, dict):
            groups[name] = list(group.get("hosts", []))
            children[name] = list(group.get("children", []))
    merged: dict[str, Any] = {}
    for path in outputs:
        merged_part = read_outputs(path)
        for key, value in merged_part.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key].update(value)
            elif isinstance(value, list) and isinstance(merged.get(key), list):
                merged[key] = merged[key] + value
            else:
                merged[key] = value
    return Inventory(inventory, hostvars, groups, merged, children)


def read_outputs(path: Path) -> dict[str, Any]:
    """`pulumi stack output --json` (or the lab's outputs.json): `{"targets": {...}, ...}`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read outputs ({exc.strerror})") from None
    except ValueError as exc:
        raise InventoryError(f"{path}: outputs are not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("targets", {}), dict):
        raise InventoryError(f"{path}: outputs must be a JSON object with a 'targets' mapping")
    for gid, target in data.get("targets", {}).items():
        if not isinstance(target, dict) or "host" not in target or "address" not in target:
            raise InventoryError(f"{path}: targets[{gid!r}] needs 'host' and 'address'")
    return data
