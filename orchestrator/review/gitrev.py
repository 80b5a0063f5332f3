"""Plans as they were at a git revision, extracted into a directory for the one loader.

`fjmig diff` compares two revisions: rather than teach the loader about git, the plan files of
the revision are written to a temporary directory and loaded with `load_plans` like any other.
Git always runs with argv lists (names from plans or the command line never reach a shell).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path, PurePosixPath

from ..errors import FjmigError

PLAN_SUFFIXES = (".yaml", ".yml", ".json")
MAX_BLOB_BYTES = 8 * 1024 * 1024


class GitError(FjmigError):
    """Not a git repository, an unknown revision, or git itself failed."""


def _git(repo: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False, timeout=120)
    except FileNotFoundError:
        raise GitError("git is not installed (needed to read plans at a revision)") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} timed out") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(message[-1] if message else f"git {args[0]} failed")
    return done.stdout


def repo_root(start: Path) -> Path:
    """The top level of the work tree that contains `start`."""
    try:
        out = _git(start, "rev-parse", "--show-toplevel")
    except GitError:
        raise GitError(f"{start}: not inside a git repository (use two directories to compare "
                       "plans outside git)") from None
    return Path(out.decode().strip())


def plans_path_in_repo(root: Path, plans: str, cwd: Path) -> PurePosixPath:
    """The plans directory as a path inside the repository (as git names it)."""
    absolute = (cwd / plans).resolve() if not os.path.isabs(plans) else Path(plans).resolve()
    try:
        relative = absolute.relative_to(root.resolve())
    except ValueError:
        raise GitError(f"{plans}: the plans directory is outside the repository {root}") from None
    return PurePosixPath(relative.as_posix())


def resolve_revision(root: Path, revision: str) -> str:
    """The commit id of `revision`; a clear error for anything that is not a commit."""
    if not revision or revision.startswith("-"):
        raise GitError(f"{revision!r} is not a revision")
    try:
        out = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}")
        return out.decode().strip()
    except GitError:
        raise GitError(f"unknown revision {revision!r} in {root}") from None


def extract_plans(root: Path, commit: str, plans: PurePosixPath, into: Path) -> Path:
    """Write the plan files directly inside `plans` at `commit` to `into/<name>`; returns that dir.

    Only regular files are taken (no symlinks, no subdirectories), as `load_plans` reads them.
    """
    target = into / (plans.name or "plans")
    target.mkdir(parents=True, exist_ok=True)
    spec = f"{plans.as_posix().rstrip('/')}/" if str(plans) not in ("", ".") else ""
    listing = _git(root, "ls-tree", "-z", "--full-tree", commit, "--", spec) if spec else \
        _git(root, "ls-tree", "-z", "--full-tree", commit)
    found = False
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        mode, kind, sha = meta.decode().split()
        name = PurePosixPath(path.decode("utf-8", "surrogateescape")).name
        found = True
        if kind != "blob" or mode not in ("100644", "100755") or not name.endswith(PLAN_SUFFIXES):
            continue
        if name.startswith(".") or "/" in name or name in ("", ".", ".."):
            continue
        size = int(_git(root, "cat-file", "-s", sha).decode().strip())
        if size > MAX_BLOB_BYTES:
            raise GitError(f"{plans}/{name} at {commit[:12]} is {size} bytes: too large for a plan")
        (target / name).write_bytes(_git(root, "cat-file", "blob", sha))
    if not found:
        raise GitError(f"{plans} does not exist at {commit[:12]}")
    return target
