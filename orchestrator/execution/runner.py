"""Running one job through ansible-runner, safely (docs/EXECUTION.md, 'ansible-runner: what fjmig guards against').

- A fresh private data dir per job (runner reuses `env/*` files and fixed inventory names).
- ANSIBLE_HOST_KEY_CHECKING=True always: runner would otherwise accept unknown keys.
- `env/settings` is written as a file (runner drops `settings=` without it).
- The job dir holds runner's `command` artifact (the full environment) and the extra vars:
  it is deleted after the job; only the playbook's stdout is kept as the step's log.
- The playbook runs in a child of the run's playbook server (playbook_server.py) when there is one.
- Cancel kills the playbook's process tree (the server does it when runner kills the wrapper),
  then cancel.yml stops what the job started on its hosts (tagged with its fjmig_job_token);
  SSH ControlPersist masters are closed explicitly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import ansible_internals as internals
from .freezes import lost_commit
from .jobs import Job
from .playbook_server import SERVER_FLAG, PlaybookServer, kill_tree

if TYPE_CHECKING:
    from .remote import NodeLinks

TRANSFERRED = re.compile(r"^Total transferred file size: ([\d,.]+) bytes", re.MULTILINE)
PLAYBOOKS_DIR = Path(__file__).resolve().parents[2] / "playbooks"
PRESYNC_PLAY = "Presync the data to the target"
"""The play of cutover.yml that copies the data first when a presync and its cutover run as one job
(fjmig_with_presync): its copy succeeding on the source host is the presync done."""


@dataclass
class JobResult:
    status: str
    """successful | failed | unreachable | canceled | lost (its execution node)"""
    rc: int
    message: str | None
    stats: dict[str, Any]
    changed: int = 0
    unreachable_hosts: list[str] = field(default_factory=list)
    bytes_moved: int = 0
    """Bytes rsync transferred (its --stats 'Total transferred file size'), for progress."""
    reported: dict[str, Any] = field(default_factory=dict)
    """What the playbook reported with set_stats (e.g. the cutover's fjmig_downtime_s)."""
    node: str | None = None
    """The execution node the job ran on (None: the control node). status `lost`: the node was lost."""


@dataclass
class RunnerConfig:
    inventory: Path
    playbooks_dir: Path = PLAYBOOKS_DIR
    work_dir: Path = Path(".fjmig/jobs")
    log_dir: Path | None = None
    check: bool = False
    verbosity: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    control_dir: Path | None = None
    """Shared by a run's jobs so SSH connections persist between steps; closed at the end."""
    playbook_server: str | None = None
    """Socket of the run's playbook server (playbook_server.py); None: every job execs ansible-playbook."""
    job_tag: str | None = None
    """The journal's identity: jobs get fjmig_job_token = job_token(job_tag, step) (see cancel.yml)."""
    nodes: NodeLinks | None = None
    """The run's execution nodes (remote.py); None: every job runs on the control node."""


def _envvars(control_dir: Path, config: RunnerConfig) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if venv_bin not in path.split(os.pathsep):
        path = f"{venv_bin}{os.pathsep}{path}"
    env = {
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_FORCE_COLOR": "False",
        "PATH": path,
    }
    env.update(config.extra_env)
    return env


WRAPPER = """#!{python} -IS
# fjmig: records the playbook's process group (so that a later run can reap it if fjmig dies) and
# runs ansible-playbook through the run's playbook server, or execs it (orchestrator/execution/playbook_client.py).
import sys
sys.path.insert(0, {root!r})
from orchestrator.execution.playbook_client import client_main
sys.exit(client_main(sys.argv[1:]))
"""


_WRAPPER_LOCK = threading.Lock()


def playbook_wrapper(work_dir: Path) -> Path:
    """The `binary` ansible-runner starts instead of ansible-playbook (see WRAPPER)."""
    with _WRAPPER_LOCK:
        work_dir.mkdir(parents=True, exist_ok=True)
        path = work_dir / "ansible-playbook-wrapper"
        text = WRAPPER.format(python=sys.executable, root=str(Path(__file__).resolve().parents[2]))
        if not path.exists() or path.read_text() != text:
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(text)
            tmp.chmod(0o700)
            os.replace(tmp, path)
        return path


def reap_orphans(work_dir: Path) -> list[int]:
    """Kill what a dead fjmig left running: the process groups of its playbooks (recorded by the
    wrapper) and its SSH ControlPersist masters; delete their job dirs (they hold runner's
    environment artifact). Only call while holding the journal lock."""
    killed = []
    if not work_dir.is_dir():
        return killed
    for job_dir in work_dir.glob("job-*"):
        for pgid_file in job_dir.glob("pgid*"):  # the wrapper's group, and the playbook server child's
            with contextlib.suppress(OSError, ValueError):
                pgid = int(pgid_file.read_text().strip())
                if pgid > 1 and _is_ansible_group(pgid):
                    kill_tree(pgid)  # ansible's workers call setsid(): the group alone misses them
                    with contextlib.suppress(OSError):
                        os.killpg(pgid, signal.SIGKILL)
                    killed.append(pgid)
        shutil.rmtree(job_dir, ignore_errors=True)
    for record in work_dir.glob("control-*"):
        with contextlib.suppress(OSError):
            control_dir = Path(record.read_text().strip())
            if control_dir.name.startswith("fjcp-"):
                close_control_masters(control_dir)
                shutil.rmtree(control_dir, ignore_errors=True)
            record.unlink()
    return killed


def _is_ansible_group(pgid: int) -> bool:
    """The group leader is still an ansible-playbook, its wrapper or a playbook server child (pids
    are reused: never kill a stranger)."""
    try:
        cmdline = Path(f"/proc/{pgid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"ansible-playbook" in part or part == SERVER_FLAG.encode() for part in cmdline[:5])


def new_control_dir() -> Path:
    """A short private directory for ControlPath sockets (unix socket paths are ~104 bytes)."""
    return Path(tempfile.mkdtemp(prefix="fjcp-", dir="/tmp"))


def close_control_masters(control_dir: Path) -> None:
    """Ask every SSH ControlPersist master of a job to exit (they outlive a cancelled job)."""
    if not control_dir.is_dir():
        return
    for socket_path in control_dir.iterdir():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "fjmig-control"],
                           capture_output=True, timeout=10, check=False)


def playbook_server(config: RunnerConfig) -> PlaybookServer:
    """The run's playbook server, started with the environment ansible-runner gives its jobs (so
    that ansible's configuration is the same; playbook_server.py checks it per job)."""
    if config.control_dir is None:
        raise ValueError("a playbook server needs the run's shared control_dir")
    env = internals.runner_environment(config.playbooks_dir, _envvars(config.control_dir, config),
                                       playbook_wrapper(config.work_dir).resolve())
    env["FJMIG_WORK_DIR"] = str(config.work_dir.resolve())  # whose server this is (ps, tests)
    return PlaybookServer(config.playbooks_dir, env)


def job_token(job_tag: str, step_id: str) -> str:
    """What a job's remote commands carry as FJMIG_JOB_TOKEN: unique to the journal and the step."""
    return f"{job_tag}:{step_id}"


def cancel_job(hosts: list[str], tokens: list[str], freezes: list[dict[str, str]] | None = None) -> Job:
    """The job that stops, on HOSTS, what jobs with TOKENS left running, and settles the freezes
    ({host, key}) their cutovers armed (playbooks/cancel.yml)."""
    targets = tuple(sorted(set(hosts)))
    extravars: dict[str, object] = {"fjmig_cancel_hosts": list(targets), "fjmig_cancel_tokens": tokens}
    if freezes:
        extravars["fjmig_cancel_freezes"] = freezes
    return Job("cancel", "cancel.yml", extravars, targets)


def armed_freezes(job: Job) -> list[dict[str, str]]:
    """The freeze a cutover job may have armed on its source (cutover.yml)."""
    if job.playbook != "cutover.yml" or "source_host" not in job.extravars:
        return []
    return [{"host": str(job.extravars["source_host"]), "key": str(job.extravars["service_key"])}]


def quiet_config(config: RunnerConfig) -> RunnerConfig:
    """A run's configuration for a job of its own (no token, no check mode, no step log)."""
    return dataclasses.replace(config, job_tag=None, check=False, log_dir=None)


def stop_remote(hosts: list[str], tokens: list[str], config: RunnerConfig,
                freezes: list[dict[str, str]] | None = None) -> JobResult:
    """Stop, on HOSTS, what jobs with TOKENS left running; settle FREEZES."""
    return run_job(cancel_job(hosts, tokens, freezes), quiet_config(config), threading.Event())


def run_job(job: Job, config: RunnerConfig, cancel: threading.Event,
            on_presync_done: Callable[[dict[str, int]], None] | None = None) -> JobResult:
    """Run one playbook job; never raises for a playbook failure. A cancelled job's remote commands
    are stopped before this returns. on_presync_done({"changed": 0|1, "bytes": moved so far}) is
    called, from the job's thread, when the PRESYNC_PLAY copy of a cutover job with
    fjmig_with_presync succeeds."""
    if config.nodes is not None and job.playbook == "cancel.yml":
        from .remote import cancel_on_nodes

        return cancel_on_nodes(job, quiet_config(config), lambda j, c: _run_job(j, c, threading.Event(), None),
                               lambda j, c, node: _run_on_node(j, c, threading.Event(), None, node))
    node = config.nodes.route(job.hosts) if config.nodes is not None else None
    if node is not None:
        result = _run_on_node(job, config, cancel, on_presync_done, node.name)
    else:
        result = _run_job(job, config, cancel, on_presync_done)
    if result.status == "canceled" and config.job_tag and job.hosts:
        stopped = stop_remote(list(job.hosts), [job_token(config.job_tag, job.step_id)], config,
                              armed_freezes(job) if not config.check else None)
        if "fjmig_freezes" in stopped.reported:
            result.reported["fjmig_freezes"] = stopped.reported["fjmig_freezes"]
    return result


SSH_CLOSED = "Shared connection to"
"""How ssh's notice that a multiplexed session ended begins (on the task's stderr)."""


def _failure_message(failures: list[str], most: int = 3) -> str | None:
    """Every host that failed (several can at once: a job's plays run on several hosts), in the
    order their reasons came, the first `most` of them in full."""
    if len(failures) <= 1:
        return failures[0] if failures else None
    shown = [reason[:300] for reason in failures[:most]]
    more = f"; and {len(failures) - most} more" if len(failures) > most else ""
    return "; ".join(shown) + more


def _error_output(res: dict[str, Any]) -> str:
    """What a failed task's command said: its stderr, or, for raw tasks (they run with a tty,
    which merges stderr into stdout, and leave only ssh's closing notice on stderr), its stdout."""
    stderr = str(res.get("stderr") or "").strip()
    if stderr and not stderr.startswith(SSH_CLOSED):
        return stderr
    lines = str(res.get("stdout") or "").strip().splitlines()
    return "\n".join(line for line in lines if not line.startswith(SSH_CLOSED)) or stderr


_PTY_PATCH_LOCK = threading.Lock()


def _write_job_env(job: Job, config: RunnerConfig, job_dir: Path) -> None:
    """The job's extra variables (env/extravars, 0600: not on the command line where `ps` shows
    them) and runner's settings."""
    (job_dir / "env").mkdir()
    extravars = job_dir / "env" / "extravars"
    extravars.touch(mode=0o600)
    variables = dict(job.extravars)
    if config.job_tag:
        variables["fjmig_job_token"] = job_token(config.job_tag, job.step_id)
    extravars.write_text(json.dumps(variables, ensure_ascii=False))
    (job_dir / "env" / "settings").write_text(json.dumps({
        "pexpect_timeout": 1,
        "suppress_ansible_output": True,
    }))


class _Watch:
    """What a job's events say (failed and unreachable hosts, bytes moved, set_stats), local or
    streamed from an execution node, and the JobResult they make with the job's status."""

    def __init__(self, job: Job, on_presync_done: Callable[[dict[str, int]], None] | None) -> None:
        self.job = job
        self.on_presync_done = on_presync_done
        self.failures: list[str] = []  # every failed or unreachable host's reason, as they came
        self.unreachable: list[str] = []
        self.moved = 0
        self.reported: dict[str, Any] = {}

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        if kind == "playbook_on_stats":
            self.reported.update({k: v for k, v in (data.get("artifact_data") or {}).items() if k.startswith("fjmig_")})
        if kind == "runner_on_ok":
            stdout = str((data.get("res") or {}).get("stdout") or "")
            for match in TRANSFERRED.finditer(stdout):
                self.moved += int(match.group(1).replace(",", "").replace(".", ""))
            if (self.on_presync_done and data.get("play") == PRESYNC_PLAY
                    and data.get("host") == self.job.extravars.get("source_host")):
                self.on_presync_done({"changed": int(bool((data.get("res") or {}).get("changed"))),
                                      "bytes": self.moved})
        if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            res = data.get("res", {}) or {}
            host = data.get("host", "?")
            msg = res.get("msg") or res.get("stderr") or res.get("reason") or "failed"
            if kind == "runner_on_unreachable":
                self.unreachable.append(host)
                self.failures.append(f"host {host} unreachable: {str(msg).strip()[:400]}")
            else:
                # cutover.yml's freeze (action_plugins/fjmig_raw.py): did the source's watchdog decide first?
                commit = res["commit"] if isinstance(res.get("commit"), dict) else None
                lost = lost_commit(str(commit.get("stdout") or "")) if commit else None
                if lost is not None:
                    self.reported["fjmig_freeze_lost"] = lost
                stderr = _error_output(commit or res)
                detail = f"{msg}" + (f": {stderr[-300:]}" if stderr and stderr not in str(msg) else "")
                self.failures.append(f"{data.get('task', 'task')} on {host}: {detail.strip()[:600]}")
        return True

    def result(self, status: str, rc: int, stats: dict[str, Any], node: str | None = None) -> JobResult:
        changed = sum((stats.get("changed") or {}).values())
        if status == "canceled":
            return JobResult("canceled", rc, "interrupted", stats, changed, bytes_moved=self.moved,
                             reported=self.reported, node=node)
        if status == "successful" and rc == 0:
            return JobResult("successful", rc, None, stats, changed, bytes_moved=self.moved, reported=self.reported,
                             node=node)
        if self.unreachable or (stats.get("dark") or {}):
            hosts = sorted(set(self.unreachable) | set(stats.get("dark") or {}))
            return JobResult("unreachable", rc, _failure_message(self.failures) or f"unreachable: {', '.join(hosts)}",
                             stats, changed, hosts, reported=self.reported, node=node)
        return JobResult("failed", rc, _failure_message(self.failures) or f"ansible-playbook exited {rc} ({status})",
                         stats, changed, reported=self.reported, node=node)


def _keep_log(job: Job, config: RunnerConfig, job_dir: Path) -> None:
    """The playbook's stdout is the step's log (a job that ran two steps: the log of each)."""
    if config.log_dir is None:
        return
    config.log_dir.mkdir(parents=True, exist_ok=True)
    stdout = job_dir / "artifacts" / "job" / "stdout"
    if stdout.exists():
        for step_id in (job.step_id, *job.also):
            shutil.copyfile(stdout, config.log_dir / (step_id.replace("/", "__").replace(":", "--") + ".log"))


def _run_on_node(job: Job, config: RunnerConfig, cancel: threading.Event,
                 on_presync_done: Callable[[dict[str, int]], None] | None, node: str) -> JobResult:
    """The job on its execution node (remote.py), with the same events, log and result as locally."""
    from .remote import run_remote_job

    assert config.nodes is not None
    link = config.nodes.links[node]
    watch = _Watch(job, on_presync_done)
    token = job_token(config.job_tag, job.step_id) if config.job_tag else None

    def prepare(job_dir: Path) -> tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]:
        _write_job_env(job, config, job_dir)
        return {"playbook": job.playbook, "inventory": str(config.inventory.resolve()), "binary": "ansible-playbook",
                "cmdline": ("--check " if config.check else "") + job.playbook, "quiet": True,
                "verbosity": config.verbosity or None, "ident": "job",
                "settings": {"pexpect_timeout": 1, "suppress_ansible_output": True}}, watch

    def finish(job_dir: Path, status: str, rc: int, stats: dict[str, Any]) -> JobResult:
        _keep_log(job, config, job_dir)
        return watch.result(status, rc, stats, node)

    try:
        return run_remote_job(link, job, config, cancel, token, prepare, finish)
    except Exception as exc:  # the transport itself broke: report, do not crash the run
        return JobResult("failed", -1, f"execution node {node}: {type(exc).__name__}: {exc}", {}, node=node)


def _run_job(job: Job, config: RunnerConfig, cancel: threading.Event,
             on_presync_done: Callable[[dict[str, int]], None] | None) -> JobResult:
    import ansible_runner

    with _PTY_PATCH_LOCK:
        internals.skip_pty_close_delay()

    config.work_dir.mkdir(parents=True, exist_ok=True)
    job_dir = Path(tempfile.mkdtemp(prefix="job-", dir=config.work_dir)).resolve()
    own_control_dir = config.control_dir is None
    control_dir = config.control_dir or new_control_dir()
    os.chmod(job_dir, 0o700)
    _write_job_env(job, config, job_dir)
    env = _envvars(control_dir, config)
    env["FJMIG_JOB_DIR"] = str(job_dir)
    # Temporary files of what the job runs on the control node (a local module's payload) go in
    # the job's dir, removed with it, even when the job is cancelled and its module killed.
    (job_dir / "tmp").mkdir(mode=0o700)
    env["TMPDIR"] = str(job_dir / "tmp")
    # ... and so does ansible's own local temporary directory, which a killed playbook cannot remove
    # (the playbook server's children and an exec'd ansible-playbook both read this).
    env["ANSIBLE_LOCAL_TEMP"] = env["TMPDIR"]
    if config.playbook_server:
        env["FJMIG_PLAYBOOK_SERVER"] = config.playbook_server
    watch = _Watch(job, on_presync_done)
    try:
        result = ansible_runner.run(
            private_data_dir=str(job_dir),
            project_dir=str(config.playbooks_dir),
            playbook=job.playbook,
            inventory=str(config.inventory.resolve()),
            envvars=env,
            # With `binary`, runner appends no playbook: it goes in cmdline (a known, safe name).
            binary=str(playbook_wrapper(config.work_dir).resolve()),
            cmdline=("--check " if config.check else "") + job.playbook,
            quiet=True,
            verbosity=config.verbosity or None,
            cancel_callback=cancel.is_set,
            event_handler=watch,
            ident="job",
        )
        stats = result.stats or {}
        status = result.status
        rc = int(result.rc if result.rc is not None else -1)
        _keep_log(job, config, job_dir)
    except Exception as exc:  # ansible-runner itself broke: report, do not crash the run
        return JobResult("failed", -1, f"ansible-runner failed: {exc}", {})
    finally:
        if cancel.is_set() or own_control_dir:
            close_control_masters(control_dir)
        if own_control_dir:
            shutil.rmtree(control_dir, ignore_errors=True)
        shutil.rmtree(job_dir, ignore_errors=True)
    return watch.result(status, rc, stats)
