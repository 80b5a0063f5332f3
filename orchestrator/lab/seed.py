"""Deterministic, scaled-down data for every system with data on a source host.

The same plans and scale always give the same bytes (sizes from a PRNG seeded by the system's
global id, contents from SHAKE-128 of the id and file name),
so a test can compare a target's data against `seed-manifest.json` and a rerun of `lab up`
reproduces it. Each system gets a README, a settings file in `config/` and a few record files
in `records/` whose sizes add up to `size_gb` scaled to `scale_mb_per_gb` MB per GB.
"""

from __future__ import annotations

import hashlib
import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .topology import Service

DEFAULT_SCALE_MB_PER_GB = 0.001
MIN_RECORD_BYTES = 256
MAX_FILE_BYTES = 64 * 1024 * 1024


def system_files(service: Service, scale_mb_per_gb: float) -> dict[str, bytes]:
    """Relative path -> content for one system (pure, deterministic)."""
    rng = random.Random(hashlib.sha256(service.key.encode()).digest())  # noqa: S311 - test data, not secrets
    size_gb = service.size_gb
    total = max(int(size_gb * scale_mb_per_gb * 1_000_000), MIN_RECORD_BYTES)
    parts = rng.randint(2, 4)
    cuts = sorted(rng.randint(0, total) for _ in range(parts - 1))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
    files = {
        "README.txt": f"{service.key}: seeded by fjmig lab (status {service.status}, "
                      f"classification {service.classification}, {size_gb} GB in the plan)\n".encode(),
        "config/settings.json": json.dumps({"system": service.system, "department": service.dept,
                                            "port": service.port}, sort_keys=True).encode() + b"\n",
    }
    for number, size in enumerate(sizes):
        # One digest call is limited in size (OverflowError near 256 MiB): big parts are split.
        pieces = [min(MAX_FILE_BYTES, size - offset) for offset in range(0, size, MAX_FILE_BYTES)] or [1]
        for piece, piece_size in enumerate(pieces):
            suffix = "" if len(pieces) == 1 else f"-{piece:03d}"
            name = f"records/part-{number:04d}{suffix}.dat"
            files[name] = hashlib.shake_128(f"{service.key}/{name}".encode()).digest(max(piece_size, 1))
    return files


def _seed_one(service: Service, base: Path, scale_mb_per_gb: float) -> dict[str, Any]:
    entries: dict[str, dict[str, Any]] = {}
    made: set[Path] = set()
    for relative, content in system_files(service, scale_mb_per_gb).items():
        path = base / relative
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(content)
        entries[relative] = {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    return {"path": service.path, "host": service.host, "files": dict(sorted(entries.items()))}


def seed(services: list[Service], srv_root: dict[str, Path], scale_mb_per_gb: float,
         workers: int = 8) -> dict[str, dict[str, Any]]:
    """Write every system's files under its source host's /srv; return the manifest.

    Threads overlap the file system's latency (hashing and writing release the GIL)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        entries = pool.map(lambda s: _seed_one(s, srv_root[s.host] / s.path.removeprefix("/srv/"), scale_mb_per_gb),
                           services)
        return {service.key: entry for service, entry in zip(services, entries, strict=True)}


def verify(manifest: dict[str, dict[str, Any]], srv_root: dict[str, Path]) -> list[str]:
    """Differences between the manifest and the files on disk (empty when they match)."""
    problems = []
    for key, entry in manifest.items():
        base = srv_root[entry["host"]] / entry["path"].removeprefix("/srv/")
        found = {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()} if base.is_dir() else set()
        for extra in sorted(found - set(entry["files"])):
            problems.append(f"{key}: unexpected file {extra}")
        for relative, want in entry["files"].items():
            path = base / relative
            if not path.is_file():
                problems.append(f"{key}: missing {relative}")
                continue
            data = path.read_bytes()
            if len(data) != want["size"] or hashlib.sha256(data).hexdigest() != want["sha256"]:
                problems.append(f"{key}: {relative} differs from the manifest")
    return problems
