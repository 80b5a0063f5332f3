"""Every place fjmig relies on ansible-core's, ansible-runner's or ptyprocess's insides.

The playbook server (playbook_server.py) and the runner (runner.py) use these functions and
nothing private of those packages directly, so that what an upgrade can break is in one place.
Each touchpoint below says what it relies on and the versions it was checked against; its probe
(`TOUCHPOINTS`) is run by the canary test (tests/unit/execution/test_ansible_internals.py),
which fails naming the touchpoint when an upgrade removes or changes what it relies on. When a
touchpoint of the server breaks at run time, jobs fall back to a fresh `ansible-playbook` and the
run says so (executor: run summary, journal, `fjmig status`).

Checked against ansible-core 2.19.14, ansible-runner 2.4.3, ptyprocess 0.7.0.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKED_VERSIONS = {"ansible-core": "2.19.14", "ansible-runner": "2.4.3", "ptyprocess": "0.7.0"}

PER_JOB_VARS = frozenset({"ANSIBLE_CACHE_PLUGIN_CONNECTION", "ANSIBLE_LOCAL_TEMP"})
"""ANSIBLE_* variables that may differ between a job and the warm server: the fact cache path is
read only when a playbook runs, and the local temporary directory, made when ansible is imported,
is made again for each job (job_local_tmp). Every other ANSIBLE_* variable is configuration that
ansible-core reads when it is imported: a job whose values differ cannot use the warm server."""

PRELOADED_MODULES = (
    "ansible.executor.task_executor", "ansible.executor.process.worker", "ansible.plugins.strategy.linear",
    "ansible.plugins.connection.ssh", "ansible.plugins.connection.local", "ansible.plugins.action.command",
    "ansible.plugins.action.normal", "ansible.plugins.inventory.yaml", "ansible.plugins.callback.default",
    "ansible.template",
)
"""Modules every playbook run imports (module paths of ansible-core, not its API): imported once by
the server so that its children do not. A missing one costs speed only."""

PRELOADED_ACTIONS = ("raw", "assert", "set_fact", "set_stats", "normal", "command")


# -- the playbook server's touchpoints --------------------------------------------------------


def import_fingerprint(env: dict[str, str], cwd: str) -> dict[str, str]:
    """What ansible-core reads when it is imported (its configuration): a job may run in the warm
    server only when this is the server's own."""
    keys = {k: v for k, v in env.items() if k.startswith("ANSIBLE_") and k not in PER_JOB_VARS}
    return {**keys, "\0cwd": os.path.realpath(cwd)}


def config_fingerprint(env: dict[str, str], cwd: str) -> dict[str, str]:
    """import_fingerprint for jobs that each run in their own copy of the project (an execution
    node's: ansible-runner's worker unpacks every job's project into its own directory). Of the
    working directory, ansible-core reads at import only `./ansible.cfg` (its configuration search
    order: ANSIBLE_CONFIG, ./ansible.cfg, ~/.ansible.cfg, /etc/ansible/ansible.cfg): equal
    content is equal configuration."""
    keys = {k: v for k, v in env.items() if k.startswith("ANSIBLE_") and k not in PER_JOB_VARS}
    try:
        with open(os.path.join(cwd, "ansible.cfg"), "rb") as handle:
            config = hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        config = ""
    return {**keys, "\0ansible.cfg": config}


def preload_modules() -> None:
    """Import PRELOADED_MODULES (best effort)."""
    for module in PRELOADED_MODULES:
        with contextlib.suppress(Exception):
            __import__(module)


def cache_collection_metadata() -> None:
    """Parse each collection's plugin routing table once. ansible-core parses ansible.builtin's
    (config/ansible_builtin_runtime.yml, ~0.25 s with PyYAML's Python constructor) in every
    process, through the module global `_collection_finder._meta_yml_to_dict`, which it looks up
    when it loads a collection package; upstream leaves that global replaceable ("supports import
    sanity test providing a different impl"). This replaces it with the same parser behind a cache
    keyed by the text's sha256, and parses the builtin table now."""
    import ansible
    from ansible.utils.collection_loader import _collection_finder

    parse = _collection_finder._meta_yml_to_dict
    if parse is None:
        return
    cache: dict[str, Any] = {}

    def cached(data: bytes | str, content_id: Any) -> Any:
        key = hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()
        if key not in cache:
            cache[key] = parse(data, content_id)
        return cache[key]

    _collection_finder._meta_yml_to_dict = cached
    with contextlib.suppress(OSError, ValueError):
        path = os.path.join(os.path.dirname(ansible.__file__), "config", "ansible_builtin_runtime.yml")
        with open(path, "rb") as handle:
            cached(handle.read(), ("ansible.builtin", "runtime.yml"))


def preload_plugins() -> None:
    """Load the plugins every job loads, initialising the plugin loader as ansible-playbook does
    (the server runs with the jobs' environment and working directory; the fingerprint checks it
    per job). ansible-playbook loads every callback to find the enabled ones, and every
    connection, shell and become plugin when a playbook starts. Best effort: a job loads whatever
    is not here itself."""
    try:
        from ansible import constants
        from ansible.plugins import loader

        loader.init_plugin_loader([])
        # ansible's own callbacks only: ansible-runner's reads its job's environment on import
        callbacks = Path(loader.__file__).parent / "callback"
        for path in sorted(callbacks.glob("[a-z]*.py")):
            loader.callback_loader.get(f"ansible.builtin.{path.stem}", class_only=True)
        for name in constants.INVENTORY_ENABLED:
            loader.inventory_loader.get(name)
        for plugins in (loader.vars_loader, loader.connection_loader, loader.shell_loader, loader.become_loader):
            list(plugins.all(class_only=True))
        loader.strategy_loader.get("ansible.builtin.linear", class_only=True)
        for name in PRELOADED_ACTIONS:
            loader.action_loader.get(f"ansible.builtin.{name}", class_only=True)
    except Exception:  # noqa: S110 (an optimisation: jobs load what is missing themselves)
        pass


def local_tmp_root() -> str:
    """Where ansible made the server's local temporary directory (the parent of DEFAULT_LOCAL_TMP)."""
    from ansible import constants

    return os.path.dirname(str(constants.DEFAULT_LOCAL_TMP))


def job_local_tmp(job_tmp: str, fallback_root: str) -> str:
    """Give a forked job its own local temporary directory. ansible-core makes DEFAULT_LOCAL_TMP
    when its configuration is loaded (at import: the server's); a job's must be its own, in the
    job's directory (which goes with the job even when it is killed)."""
    from ansible import constants

    constants.DEFAULT_LOCAL_TMP = tempfile.mkdtemp(prefix=f"ansible-local-{os.getpid()}",
                                                   dir=job_tmp if os.path.isdir(job_tmp) else fallback_root)
    return str(constants.DEFAULT_LOCAL_TMP)


def remove_local_tmp() -> None:
    """What ansible-core's configuration registered with atexit: removing DEFAULT_LOCAL_TMP. The
    server and its children exit with os._exit (the interpreter's teardown of ansible's modules
    took ~0.4 s), which runs no atexit handler, so they do this themselves."""
    from ansible import constants

    shutil.rmtree(str(constants.DEFAULT_LOCAL_TMP), ignore_errors=True)


def reset_display_width() -> None:
    """Display measured the server's terminal width when it was created; measure the job's."""
    with contextlib.suppress(Exception):
        from ansible.utils.display import Display

        Display()._set_column_width()


def run_playbook_cli(argv: list[str]) -> int:
    """ansible-playbook's own entry point, in this (forked) process; its exit status."""
    from ansible.cli.playbook import main

    # The server initialised the plugin loader (preload_plugins), as this run would have.
    warnings.filterwarnings("ignore", message="AnsibleCollectionFinder has already been configured")
    try:
        main(argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


# -- the runner's touchpoints -----------------------------------------------------------------


def skip_pty_close_delay() -> None:
    """ptyprocess's PtyProcess.close() sleeps `delayafterclose` (0.1 s) "to give the kernel time
    to update the process status" before checking the child. ansible-runner closes a job's pty
    after the playbook has exited and been reaped, so the sleep only delays every job; it is
    skipped for a child already known to be terminated (`terminated`). close() on a live child is
    unchanged. Applied once per process."""
    from ptyprocess import PtyProcess

    if getattr(PtyProcess.close, "_fjmig", False):
        return
    original = PtyProcess.close

    def close(self: Any, force: bool = True) -> None:
        if self.terminated:
            self.delayafterclose = 0
        original(self, force)

    close._fjmig = True  # type: ignore[attr-defined]
    close.__wrapped__ = original  # type: ignore[attr-defined]
    PtyProcess.close = close  # type: ignore[method-assign]


def runner_environment(project_dir: Path, envvars: dict[str, str], binary: Path) -> dict[str, str]:
    """The environment ansible-runner gives a job's playbook (RunnerConfig.prepare() computes it
    into `.env`): the playbook server starts with it, so that ansible's configuration is the
    jobs' own."""
    from ansible_runner.config.runner import RunnerConfig

    with tempfile.TemporaryDirectory(prefix="fjenv-") as tmp:
        prepared = RunnerConfig(private_data_dir=tmp, project_dir=str(project_dir), playbook="presync.yml",
                                envvars=envvars, binary=str(binary), ident="job", quiet=True)
        prepared.prepare()
        return {k: str(v) for k, v in prepared.env.items()}


# -- the canary's probes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Touchpoint:
    name: str
    relies_on: str
    probe: Callable[[], None]
    """Raises AssertionError (or anything) when what the touchpoint relies on is gone or changed."""


def _source(obj: Any) -> str:
    return inspect.getsource(obj)


def _probe_modules() -> None:
    import importlib

    for module in PRELOADED_MODULES:
        importlib.import_module(module)


def _probe_collection_metadata() -> None:
    from ansible.utils.collection_loader import _collection_finder

    parse = _collection_finder._meta_yml_to_dict
    assert callable(parse), "_collection_finder._meta_yml_to_dict is not set"
    assert parse(b"plugin_routing: {}\n", ("fjmig.probe", "runtime.yml")) == {"plugin_routing": {}}
    assert "_meta_yml_to_dict(raw_routing" in _source(_collection_finder._AnsibleCollectionPkgLoader._load_module), \
        "collection packages no longer parse their routing through the module global"


def _probe_local_tmp() -> None:
    from ansible import constants
    from ansible.config import manager

    assert os.path.basename(str(constants.DEFAULT_LOCAL_TMP)).startswith(f"ansible-local-{os.getpid()}")
    text = _source(manager)
    assert "atexit.register(cleanup_tmp_file, value" in text, "the local tmp is no longer removed at exit"
    assert text.count("atexit.register(") == 1, "ansible's configuration registers more atexit work"


def _probe_plugin_loader() -> None:
    from ansible import constants
    from ansible.plugins import loader

    loader.init_plugin_loader([])
    assert isinstance(constants.INVENTORY_ENABLED, list) and constants.INVENTORY_ENABLED
    assert inspect.isclass(loader.strategy_loader.get("ansible.builtin.linear", class_only=True))
    assert inspect.isclass(loader.callback_loader.get("ansible.builtin.default", class_only=True))
    for plugins in (loader.vars_loader, loader.connection_loader, loader.shell_loader, loader.become_loader):
        assert list(plugins.all(class_only=True)), plugins


def _probe_display() -> None:
    from ansible.utils.display import Display

    assert not [p for p in inspect.signature(Display._set_column_width).parameters if p != "self"]


def _probe_playbook_cli() -> None:
    from ansible.cli.playbook import main

    assert "args" in inspect.signature(main).parameters


def _probe_pty_close() -> None:
    from ptyprocess import PtyProcess

    text = _source(getattr(PtyProcess.close, "__wrapped__", PtyProcess.close))
    assert "time.sleep(self.delayafterclose)" in text and "self.isalive()" in text
    child = PtyProcess.spawn(["true"])
    try:
        assert child.delayafterclose >= 0 and child.terminated is False
        child.wait()
    finally:
        child.close()


def _probe_runner_environment() -> None:
    env = runner_environment(Path(tempfile.gettempdir()), {"ANSIBLE_FJMIG_PROBE": "1"}, Path("/bin/true"))
    assert env.get("ANSIBLE_FJMIG_PROBE") == "1", "RunnerConfig.prepare() no longer puts envvars in .env"


def _probe_config_search() -> None:
    from ansible.config.manager import find_ini_config_file

    with tempfile.TemporaryDirectory(prefix="fjcfg-") as tmp:
        Path(tmp, "ansible.cfg").write_text("[defaults]\n")
        os.chmod(tmp, 0o700)
        before, saved = os.getcwd(), os.environ.pop("ANSIBLE_CONFIG", None)
        try:
            os.chdir(tmp)
            found = find_ini_config_file()
        finally:
            os.chdir(before)
            if saved is not None:
                os.environ["ANSIBLE_CONFIG"] = saved
    assert found and os.path.realpath(found) == os.path.realpath(os.path.join(tmp, "ansible.cfg")), \
        f"./ansible.cfg is no longer where ansible-core looks first after ANSIBLE_CONFIG (found {found})"


def _probe_streamed_job() -> None:
    from ansible_runner.streaming import Processor, Transmitter, Worker

    for cls, needed in ((Transmitter, "_output"), (Worker, "_input"), (Processor, "_input")):
        assert needed in inspect.signature(cls.__init__).parameters, f"{cls.__name__} takes no {needed}"
    assert "unstream_dir" in _source(Processor.artifacts_callback), "the worker's artifacts are not unpacked"


def _probe_per_job_vars() -> None:
    from ansible import constants

    definitions = constants.config.get_configuration_definitions()
    names = {entry.get("name") for key in ("DEFAULT_LOCAL_TMP", "CACHE_PLUGIN_CONNECTION")
             for entry in definitions[key].get("env", [])}
    assert names == set(PER_JOB_VARS), f"the per-job variables are now {sorted(n for n in names if n)}"


TOUCHPOINTS: tuple[Touchpoint, ...] = (
    Touchpoint("preloaded modules", "the module paths in PRELOADED_MODULES (ansible-core's layout)",
               _probe_modules),
    Touchpoint("collection metadata cache", "_collection_finder._meta_yml_to_dict, a module global that "
               "_AnsibleCollectionPkgLoader._load_module calls by name", _probe_collection_metadata),
    Touchpoint("job local tmp", "constants.DEFAULT_LOCAL_TMP made at import (ansible-local-<pid>) and removed "
               "by the one atexit handler ansible's config manager registers", _probe_local_tmp),
    Touchpoint("plugin preload", "plugins.loader.init_plugin_loader, the loaders' get(class_only=) and all(), "
               "constants.INVENTORY_ENABLED", _probe_plugin_loader),
    Touchpoint("display width", "Display()._set_column_width()", _probe_display),
    Touchpoint("playbook entry point", "ansible.cli.playbook.main(args)", _probe_playbook_cli),
    Touchpoint("per-job variables", "ANSIBLE_LOCAL_TEMP and ANSIBLE_CACHE_PLUGIN_CONNECTION are the env names "
               "of DEFAULT_LOCAL_TMP and CACHE_PLUGIN_CONNECTION", _probe_per_job_vars),
    Touchpoint("pty close delay", "ptyprocess PtyProcess.close() sleeping delayafterclose, and `terminated`",
               _probe_pty_close),
    Touchpoint("runner environment", "ansible_runner RunnerConfig(...).prepare() filling .env with envvars",
               _probe_runner_environment),
    Touchpoint("config search", "ansible-core reading ./ansible.cfg of the working directory first after "
               "ANSIBLE_CONFIG (config.manager.find_ini_config_file)", _probe_config_search),
    Touchpoint("streamed job", "ansible_runner.streaming's Transmitter(_output=), Worker(_input=), Processor(_input=) "
               "and the worker's artifacts unpacked into the process side's artifact dir (artifacts/<ident>/rc)",
               _probe_streamed_job),
)


def probe_all() -> dict[str, str | None]:
    """Each touchpoint's probe: None when it holds, else what failed (for the canary test)."""
    outcome: dict[str, str | None] = {}
    for point in TOUCHPOINTS:
        try:
            point.probe()
            outcome[point.name] = None
        except Exception as exc:  # the canary reports every broken touchpoint at once
            outcome[point.name] = f"{type(exc).__name__}: {exc}"
    return outcome
