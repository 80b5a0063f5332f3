"""Reading the inventory with ansible-inventory (orchestrator/execution/inventory.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.execution.inventory import InventoryError, load_inventory

INVENTORY = """\
all:
  children:
    sources:
      hosts:
        fzu-db01: {ansible_host: 198.18.0.10}
    offices:
      hosts:
        office-fj-drc: {ansible_host: 198.18.0.11}
"""


def test_reads_the_inventory_without_the_virtualenv_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`.venv/bin/fjmig` (what `make demo` runs) starts without its virtualenv on PATH."""
    (tmp_path / "inventory.yml").write_text(INVENTORY, encoding="utf-8")
    (tmp_path / "outputs.json").write_text(json.dumps({"targets": {"fj-drc/app": {"host": "t", "address": "a"}}}),
                                           encoding="utf-8")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    inventory = load_inventory(tmp_path / "inventory.yml", [tmp_path / "outputs.json"])
    assert inventory.address("fzu-db01") == "198.18.0.10" and inventory.address("office-fj-drc") == "198.18.0.11"
    assert inventory.groups["sources"] == ["fzu-db01"] and inventory.target("fj-drc/app") == {"host": "t",
                                                                                                "address": "a"}


def test_a_broken_inventory_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "inventory.yml").write_text("all: [unclosed\n", encoding="utf-8")
    with pytest.raises(InventoryError, match=r"inventory.yml: ansible-inventory failed"):
        load_inventory(tmp_path / "inventory.yml", [])
