"""One job on an execution node, through ansible-runner's remote job protocol (docs/EXECUTION.md).

`ansible-runner transmit` (here: `ansible_runner.run(streamer="transmit")`) writes the job (its
private data dir: project, inventory, env/extravars, and runner's arguments) as a stream into an
SSH session to the node, where `ansible-runner worker` of the node's own environment runs it and
streams events, status and artifacts back, which `ansible_runner.run(streamer="process")` turns
into the same events, stats and rc as a local job's. SSH to the node pins its host key
(StrictHostKeyChecking=yes with the control node's known_hosts, never accept-new); the node reaches
the job's hosts with its own key and pins (extra variables naming paths on the node: the stream
carries no secret). One SSH master connection per node for the run carries every session, and its
keepalives notice a node that dies or drops off the network; every ssh the run starts dies with
it (setpriv --pdeathsig), which ends what it ran on the node.

On each node a playbook server for the run (node_agent.py: the same server as the control node's)
forks its jobs' playbooks, so a step through a node costs what a local one does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .jobs import Job
from .nodes import Node, route

if TYPE_CHECKING:
    from .runner import JobResult, RunnerConfig

ROOT = Path(__file__).resolve().parents[2]
CODE = ("orchestrator/__init__.py", "orchestrator/execution/__init__.py", "orchestrator/execution/ansible_internals.py",
        "orchestrator/execution/playbook_client.py", "orchestrator/execution/playbook_server.py",
        "orchestrator/execution/node_agent.py")
"""What the node runs of fjmig (standard library and its own ansible): shipped with every start."""
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEEPALIVE = ("-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=3")
"""A node silent for ~3 s is lost: its jobs are interrupted and retried."""
LOST_RC = 255
"""ssh's exit status when the connection (not the remote command) failed."""

BOOT = r"""
import json, os, shutil, sys
p = json.loads(sys.stdin.readline())
base = os.path.join(os.path.expanduser("~"), ".fjmig", "node")
code = os.path.join(base, "code-" + p["sha"])
if not os.path.isdir(code):
    os.makedirs(base, mode=0o700, exist_ok=True)
    tmp = "%s.tmp%d" % (code, os.getpid())
    for rel, text in p["files"].items():
        path = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    try:
        os.rename(tmp, code)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
sys.path.insert(0, code)
from orchestrator.execution.node_agent import main
sys.exit(main(p["args"]))
"""
"""Run on the node by its own python: unpack the shipped code once per version, run node_agent."""


def code_bundle(playbooks_dir: Path) -> tuple[str, dict[str, str]]:
    """The files a node runs (and the playbooks' ansible.cfg, the server's configuration), with their sha256."""
    files = {rel: (ROOT / rel).read_text(encoding="utf-8") for rel in CODE}
    config = playbooks_dir / "ansible.cfg"
    files["project/ansible.cfg"] = config.read_text(encoding="utf-8") if config.exists() else ""
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:32]
    return digest, files


class NodeLost(Exception):
    """The node could not be reached, or the connection to it broke."""


@dataclass
class NodeLink:
    """The run's connection to one node: its SSH master, its playbook server, its jobs."""

    node: Node
    control_dir: Path
    tag: str
    """The journal's identity: the node's server is tagged with it (FJMIG_NODE_SERVER)."""
    warm: bool
    playbooks_dir: Path
    master: subprocess.Popen[bytes] | None = None
    server: subprocess.Popen[bytes] | None = None
    info: dict[str, str] = field(default_factory=dict)
    """From the node: `code` (the shipped code's dir), and `socket`, `wrapper` with a server."""
    spawn: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen
    """Starts the master and the server (NodeLinks: from a thread that lives as long as the run:
    `--pdeathsig` follows the thread that started a process, not the process)."""
    dirty: set[str] = field(default_factory=set)
    """Tokens of jobs lost with the connection: stopped on the node before they run again."""
    counts: dict[str, int] = field(default_factory=lambda: {"jobs": 0, "lost": 0})
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def socket(self) -> Path:
        digest = hashlib.sha256(self.node.name.encode()).hexdigest()[:12]
        return self.control_dir / f"node-{digest}"

    def ssh_argv(self, remote: list[str], *, master: bool = False) -> list[str]:
        """OpenSSH to the node, strict host key checking against the control node's pins only;
        `remote` is quoted for the node's shell."""
        node = self.node
        argv = ["setpriv", "--pdeathsig", "KILL", "--", "ssh", "-i", node.key, "-p", str(node.port),
                "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={node.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=10", *KEEPALIVE, "-o", f"ControlPath={self.socket}",
                "-o", "ControlMaster=yes" if master else "ControlMaster=no", "-o", "ControlPersist=no"]
        if master:
            return [*argv, "-N", f"{node.user}@{node.address}"]
        return [*argv, f"{node.user}@{node.address}", "--", shlex.join(remote)]

    # -- the connection -------------------------------------------------------------------------

    def _master_alive(self) -> bool:
        return self.master is not None and self.master.poll() is None and self.socket.exists()

    def _connect(self) -> None:
        """Start the run's master connection to the node (the first job's, or after a loss)."""
        if self.master is not None and self.master.poll() is None:
            self.master.kill()
            self.master.wait()
        self.socket.unlink(missing_ok=True)
        log = self.control_dir / f"{self.socket.name}.log"
        with open(log, "wb") as err:
            self.master = self.spawn(self.ssh_argv([], master=True), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.master.poll() is not None or time.monotonic() > deadline:
                detail = log.read_text(errors="replace").strip().splitlines()
                self.master.kill()
                raise NodeLost(f"cannot connect to execution node {self.node.name} ({self.node.address}): "
                               + (detail[-1] if detail else "no answer"))
            time.sleep(0.01)

    def agent(self, args: list[str], *, timeout: float = 60) -> dict[str, Any]:
        """Run node_agent.py on the node with ARGS (the code goes along on stdin); its JSON answer."""
        sha, files = code_bundle(self.playbooks_dir)
        payload = json.dumps({"sha": sha, "files": files, "args": args}) + "\n"
        argv = self.ssh_argv([self._python(), "-I", "-c", BOOT])
        try:
            done = subprocess.run(argv, input=payload.encode(), capture_output=True, timeout=timeout, check=False,
                                  start_new_session=True)
        except subprocess.TimeoutExpired:
            raise NodeLost(f"execution node {self.node.name} did not answer within {timeout:.0f} s") from None
        if done.returncode == LOST_RC:
            raise NodeLost(f"execution node {self.node.name}: {_last_line(done.stderr)}")
        if done.returncode != 0:
            raise NodeLost(f"execution node {self.node.name}: node_agent {args[0]} failed: {_last_line(done.stderr)}")
        return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))

    def _python(self) -> str:
        return f"{self.node.venv.rstrip('/')}/bin/python"

    def envvars(self) -> dict[str, str]:
        """The environment of the node's jobs (and of its server: equal ANSIBLE_* values are what let
        a job fork there). Paths are the node's own."""
        node_dir = str(Path(self.info["code"]).parent)
        control = hashlib.sha256(self.tag.encode()).hexdigest()[:8]
        return {
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": f"{node_dir}/cp-{control}",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "True",
            "ANSIBLE_FORCE_COLOR": "False",
            "PATH": f"{self.node.venv.rstrip('/')}/bin:{NODE_PATH}",
        }

    def ready(self) -> None:
        """Connected, the code on the node, and (warm) the node's playbook server running for this run."""
        with self.lock:
            if not self._master_alive():
                self._connect()
                if self.server is not None:  # tethered to the lost connection: a new one, the old one stopped
                    self.server.kill()
                    self.server.wait()
                    self.server = None
            if not self.info:
                self.info = {"code": str(self.agent(["check"])["code"])}
            if self.warm and self.server is None:
                self._start_server()
            elif self.warm and self.server is not None and self.server.poll() is not None:
                self.server = None  # it stopped (its tether ended): a new one
                self._start_server()

    @property
    def server_tag(self) -> str:
        """The node's server of this journal's runs (FJMIG_NODE_SERVER): one per node."""
        return f"{self.tag}:{hashlib.sha256(self.node.name.encode()).hexdigest()[:12]}"

    def _start_server(self) -> None:
        self.agent(["stop", "[]", json.dumps([self.server_tag])])  # a dead run's or a lost connection's
        sha, files = code_bundle(self.playbooks_dir)
        payload = json.dumps({"sha": sha, "files": files,
                              "args": ["serve", self.server_tag, json.dumps(self.envvars())]})
        remote = ["env", f"FJMIG_NODE_SERVER={self.server_tag}", self._python(), "-I", "-c", BOOT]
        self.server = self.spawn(self.ssh_argv(remote), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        assert self.server.stdin is not None and self.server.stdout is not None
        self.server.stdin.write(payload.encode() + b"\n")
        self.server.stdin.flush()  # (stdin stays open: the server's tether)
        line = _read_line(self.server.stdout, 60)
        for key in ("socket", "wrapper", "worker"):
            self.info.pop(key, None)
        try:
            self.info.update(json.loads(line))
        except ValueError:
            self.server.kill()
            self.server.wait()
            self.server = None  # jobs start ansible-playbook afresh on the node: slower, same outcome
            self.counts["no_server"] = 1

    def server_counts(self) -> dict[str, int] | None:
        """How many requests the node's server forked, and how many exec'd ansible-playbook instead
        (playbook_server.PlaybookServer.stats, asked on the node); None without a server."""
        if not (self.info.get("socket") and self.server is not None and self.server.poll() is None):
            return None
        code = ("import json, socket, sys; sys.path.insert(0, sys.argv[1]); "
                "from orchestrator.execution.playbook_client import recv, send; "
                "c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[2]); send(c, {'stats': True}); "
                "print(json.dumps(recv(c)[0]))")
        argv = self.ssh_argv([self._python(), "-I", "-c", code, self.info["code"], self.info["socket"]])
        with contextlib.suppress(OSError, ValueError, subprocess.SubprocessError):
            done = subprocess.run(argv, capture_output=True, timeout=30, check=False, start_new_session=True)
            return {k: int(v) for k, v in json.loads(done.stdout.decode().strip().splitlines()[-1]).items()}
        return None

    def stop(self, tokens: list[str]) -> int:
        """Kill the jobs with TOKENS on the node (workers and all they started), once none is left."""
        answer = self.agent(["stop", json.dumps(tokens), "[]"])
        if answer.get("left"):
            raise NodeLost(f"execution node {self.node.name}: {answer['left']} process(es) of "
                           f"{', '.join(tokens)} would not die")
        return int(answer.get("killed", 0))

    def close(self) -> None:
        for proc in (self.server, self.master):
            if proc is None:
                continue
            if proc is self.server and proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # the server's tether: it stops and cleans up
                try:
                    proc.wait(timeout=10)
                    continue
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.socket.unlink(missing_ok=True)


def _last_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode(errors="replace").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "the connection failed"


def _read_line(stream: IO[bytes], timeout: float) -> bytes:
    box: list[bytes] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else b""


class NodeLinks:
    """A run's execution nodes: route a job, keep one link per node, close them at the end."""

    def __init__(self, nodes: dict[str, Node], control_dir: Path, tag: str, *, warm: bool,
                 playbooks_dir: Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.nodes = nodes
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fjmig-node-spawn")
        self.links = {name: NodeLink(node, control_dir, tag, warm, playbooks_dir, spawn=self._spawn)
                      for name, node in nodes.items()}
        self.lost: dict[str, str] = {}
        """Node -> why it was last lost (for the run's summary)."""

    def _spawn(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Popen in the run's spawner thread: the master and the servers die with fjmig (setpriv
        --pdeathsig), and not with the (pool) thread that first needed them."""
        return self._spawner.submit(lambda: subprocess.Popen(argv, **kwargs)).result()

    def route(self, hosts: tuple[str, ...] | list[str]) -> Node | None:
        return route(self.nodes, hosts)

    def __enter__(self) -> NodeLinks:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every node's playbook server (its tether closes) and the master connections."""
        for link in self.links.values():
            link.close()
        self._spawner.shutdown(wait=True)

    def start(self, names: set[str]) -> None:
        """Connect to these nodes and start their playbook servers, all at once, before the run's
        first job (as the control node's own server starts before it): a node's start is then in no
        step's time. A node that cannot be reached now is its jobs' problem (they are lost, retried)."""
        from concurrent.futures import ThreadPoolExecutor

        def ready(link: NodeLink) -> None:
            with contextlib.suppress(NodeLost):
                link.ready()

        wanted = [self.links[name] for name in sorted(names) if name in self.links]
        if wanted:
            with ThreadPoolExecutor(max_workers=min(8, len(wanted)), thread_name_prefix="fjmig-node") as pool:
                list(pool.map(ready, wanted))

    def server_stats(self) -> dict[str, int]:
        """The nodes' servers' counts, summed, in the shape of the control node's server's stats (the
        executor reports a fallback the same way): a job on a node without a server is a fallback."""
        total = {"forked": 0, "fallback": 0}
        for link in self.links.values():
            if not link.counts["jobs"]:
                continue
            counts = link.server_counts()
            if counts is None:
                total["fallback"] += link.counts["jobs"]
                continue
            total["forked"] += counts.get("forked", 0)
            total["fallback"] += counts.get("fallback", 0)
        return total


# -- one job ------------------------------------------------------------------------------------


@dataclass
class _Seen:
    """What the process side saw of the worker's stream."""

    status: str | None = None
    explanation: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


Prepare = Callable[[Path], tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]]


def run_remote_job(link: NodeLink, job: Job, config: RunnerConfig, cancel: threading.Event,
                   token: str | None, prepare: Prepare,
                   finish: Callable[[Path, str, int, dict[str, Any]], JobResult]) -> JobResult:
    """Run JOB on LINK's node. `prepare(job_dir)` writes the job's env files and returns runner's
    keyword arguments and the event handler (runner.py's, shared with local jobs); `finish(job_dir,
    status, rc, stats)` turns the outcome into a JobResult as for a local job."""
    from .runner import JobResult, stop_remote

    node = link.node
    try:
        link.ready()
    except NodeLost as exc:
        return JobResult("lost", LOST_RC, str(exc), {}, node=node.name)
    if token and token in link.dirty:  # lost with a connection: its worker, and what it started, may still run
        stopped = stop_remote(list(job.hosts), [token], config)  # (cancel_on_nodes: the node, then the hosts)
        if stopped.status != "successful":
            return JobResult("lost", LOST_RC, f"execution node {node.name}: could not stop the job's previous "
                             f"attempt: {stopped.message}", {}, node=node.name)
    config.work_dir.mkdir(parents=True, exist_ok=True)
    job_dir = Path(tempfile.mkdtemp(prefix="job-", dir=config.work_dir)).resolve()
    os.chmod(job_dir, 0o700)
    try:
        kwargs, on_event = prepare(job_dir)
        return _stream(link, job, job_dir, kwargs, on_event, cancel, token, finish)
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


def _stream(link: NodeLink, job: Job, job_dir: Path, kwargs: dict[str, Any],
            on_event: Callable[[dict[str, Any]], bool], cancel: threading.Event, token: str | None,
            finish: Callable[[Path, str, int, dict[str, Any]], JobResult]) -> JobResult:
    import ansible_runner

    from .runner import JobResult

    node = link.node
    shutil.copytree(link.playbooks_dir, job_dir / "project", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    inventory = Path(kwargs.pop("inventory"))
    (job_dir / "inventory").mkdir()
    if inventory.is_dir():
        shutil.copytree(inventory, job_dir / "inventory" / inventory.name)
    else:
        shutil.copyfile(inventory, job_dir / "inventory" / inventory.name)
    extravars = json.loads((job_dir / "env" / "extravars").read_text())
    extravars.update({  # the node reaches the job's hosts with its own key and pins
        "ansible_ssh_private_key_file": node.host_key,
        "ansible_ssh_common_args": " ".join([
            "-o StrictHostKeyChecking=yes", f"-o UserKnownHostsFile={shlex.quote(node.host_known_hosts)}",
            "-o GlobalKnownHostsFile=/dev/null", "-o IdentitiesOnly=yes", "-o BatchMode=yes"]),
    })
    (job_dir / "env" / "extravars").write_text(json.dumps(extravars, ensure_ascii=False))
    node_job_dir = f"{Path(link.info['code']).parent}/jobs/{job_dir.name}"
    envvars = link.envvars()
    job_tmp = f"{node_job_dir}/{'tmp'}"  # the job's own, deleted with it on the node
    envvars.update({"TMPDIR": job_tmp, "ANSIBLE_LOCAL_TEMP": job_tmp})
    (job_dir / "tmp").mkdir(mode=0o700)
    warm = bool(link.info.get("socket") and link.info.get("worker"))
    if warm:
        envvars["FJMIG_PLAYBOOK_SERVER"] = link.info["socket"]
        kwargs["binary"] = link.info["wrapper"]
    else:  # runner starts ansible-playbook itself, and appends the playbook
        kwargs.pop("binary", None)
        kwargs["cmdline"] = "--check" if str(kwargs.get("cmdline") or "").startswith("--check") else None
    tagged = {"FJMIG_JOB_TOKEN": token} if token else {}
    if warm:  # the node's server forks the worker (ansible-runner's entry point)
        tagged["FJMIG_PLAYBOOK_SERVER"] = link.info["socket"]
        program = [link.info["worker"]]
    else:
        program = [f"{link.node.venv.rstrip('/')}/bin/ansible-runner", "worker"]
    remote = ["env", *(f"{k}={v}" for k, v in tagged.items()), *program, "--private-data-dir", node_job_dir,
              "--delete"]
    link.counts["jobs"] += 1
    # (its own session, as every ssh here: a Ctrl-C on the terminal reaches fjmig, which stops the job
    # on the node, not ssh, whose death would look like a lost node)
    proc = subprocess.Popen(link.ssh_argv(remote), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    errors: list[bytes] = []
    threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True).start()  # type: ignore[union-attr]

    def transmit() -> None:
        with contextlib.suppress(OSError, ValueError):
            ansible_runner.run(streamer="transmit", _output=proc.stdin, private_data_dir=str(job_dir),
                               inventory=str(job_dir / "inventory" / inventory.name), envvars=envvars,
                               **{k: v for k, v in kwargs.items() if k not in ("envvars", "cancel_callback",
                                                                                 "event_handler")})
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]

    sender = threading.Thread(target=transmit, daemon=True)
    sender.start()
    seen = _Seen()
    done = threading.Event()

    def watch_cancel() -> None:
        while not done.wait(0.1):
            if cancel.is_set():
                with contextlib.suppress(NodeLost):
                    if token:
                        link.stop([token])  # the worker and all it started; the server kills its playbook
                if proc.poll() is None:
                    proc.terminate()
                return

    threading.Thread(target=watch_cancel, daemon=True).start()

    def on_status(data: dict[str, Any], runner_config: Any = None) -> None:
        seen.status = str(data.get("status"))
        if data.get("job_explanation"):
            seen.explanation = str(data["job_explanation"])

    def on_any_event(event: dict[str, Any]) -> bool:
        if event.get("event") == "playbook_on_stats":
            data = event.get("event_data") or {}
            seen.stats = {k: data.get(k) or {} for k in ("ok", "changed", "dark", "failures", "skipped",
                                                           "ignored", "rescued", "processed")}
        on_event(event)
        return False  # (no event file: the worker's artifacts bring them, and the job dir goes anyway)

    try:
        ansible_runner.run(streamer="process", _input=proc.stdout, private_data_dir=str(job_dir), ident="job",
                           quiet=True, event_handler=on_any_event, status_handler=on_status)
    except Exception as exc:  # a broken stream: judged below by what the connection says
        seen.status, seen.explanation = "error", f"{type(exc).__name__}: {exc}"
    finally:
        done.set()
        sender.join(timeout=10)
    try:
        ssh_rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        ssh_rc = proc.wait()
    final = seen.status in ("successful", "failed", "canceled", "timeout")
    if cancel.is_set() and not (final and seen.status == "successful"):
        return finish(job_dir, "canceled", -1, seen.stats)
    if not final and ssh_rc != LOST_RC:  # the connection held: the worker itself failed on the node
        why = seen.explanation or _last_line(b"".join(errors))
        return finish(job_dir, "failed", -1, seen.stats) if seen.stats else JobResult(
            "failed", -1, f"execution node {node.name}: ansible-runner worker failed (exit {ssh_rc}): {why}",
            {}, node=node.name)
    if not final:
        reason = _last_line(b"".join(errors))
        if token:
            link.dirty.add(token)
        link.counts["lost"] += 1
        return JobResult("lost", ssh_rc, f"execution node {node.name} lost during the job: {reason}", seen.stats,
                         node=node.name)
    rc_file = job_dir / "artifacts" / "job" / "rc"
    try:
        rc = int(rc_file.read_text().strip())
    except (OSError, ValueError):
        rc = 0 if seen.status == "successful" else 1
    return finish(job_dir, str(seen.status), rc, seen.stats)


def cancel_on_nodes(job: Job, config: RunnerConfig, run_local: Callable[[Job, RunnerConfig], JobResult],
                    run_on: Callable[[Job, RunnerConfig, str], JobResult]) -> JobResult:
    """cancel.yml with execution nodes: first, on every node that reaches one of its hosts, stop the
    workers of its tokens (and all they started); then cancel.yml for each host on the node that
    routes it (hosts no node reaches: on the control node)."""
    from .runner import JobResult, cancel_job

    assert config.nodes is not None
    links = config.nodes
    hosts: list[str] = list(job.extravars.get("fjmig_cancel_hosts", []))
    tokens: list[str] = list(job.extravars.get("fjmig_cancel_tokens", []))
    problems: list[str] = []
    killed = 0
    for link in links.links.values():
        if link.node.reach & set(hosts):
            try:
                link.ready()
                killed += link.stop(tokens)
                link.dirty.difference_update(tokens)
            except NodeLost as exc:
                problems.append(str(exc))
    by_node: dict[str | None, list[str]] = {}
    for host in hosts:
        node = links.route([host])
        by_node.setdefault(node.name if node else None, []).append(host)
    changed = killed
    freezes: list[dict[str, str]] = list(job.extravars.get("fjmig_cancel_freezes", []))
    settled: dict[str, Any] = {}
    for name, group in sorted(by_node.items(), key=lambda item: item[0] or ""):
        part = cancel_job(group, tokens, [f for f in freezes if f["host"] in group])
        result = run_local(part, config) if name is None else run_on(part, config, name)
        changed += result.changed
        settled.update(result.reported.get("fjmig_freezes") or {})
        if result.status != "successful":
            problems.append(result.message or result.status)
    reported = {"fjmig_freezes": settled} if settled else {}
    if problems:
        return JobResult("failed", 1, "; ".join(problems), {}, changed, reported=reported)
    return JobResult("successful", 0, None, {}, changed, reported=reported)
