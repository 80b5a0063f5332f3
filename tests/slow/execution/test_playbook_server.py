"""The playbook server (orchestrator/execution/playbook_server.py): jobs run through ansible-runner exactly as
without it (events, stats, exit status, cancel), only faster; a mismatch falls back to exec."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from orchestrator.execution.jobs import Job
from orchestrator.execution.runner import RunnerConfig, new_control_dir, playbook_server, reap_orphans, run_job
from tests.support import ROOT
from tests.support.processes import processes
from tests.support.waiting import wait_for

PLAYBOOKS = {
    "write.yml": [{
        "name": "Write a file", "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "Write", "ansible.builtin.copy": {"dest": "{{ dest }}", "content": "{{ content }}\n",
                                                              "mode": "0600"}}],
    }],
    "fail.yml": [{
        "name": "Fail", "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "Refuse", "ansible.builtin.fail": {"msg": "refused on purpose"}}],
    }],
    "sleep.yml": [{
        "name": "Sleep", "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "Sleep", "ansible.builtin.command": {"argv": ["sleep", "{{ seconds }}"]},
                   "changed_when": False}],
    }],
}


@pytest.fixture()
def setup(tmp_path: Path):
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    for name, play in PLAYBOOKS.items():
        (playbooks / name).write_text(yaml.safe_dump(play))
    (playbooks / "ansible.cfg").write_text("[defaults]\ngathering = explicit\n")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}}}}))
    control = new_control_dir()
    config = RunnerConfig(inventory=inventory, playbooks_dir=playbooks, work_dir=tmp_path / "jobs", control_dir=control)
    yield tmp_path, config
    import shutil

    shutil.rmtree(control, ignore_errors=True)


def _job(step: str, playbook: str, **extravars: object) -> Job:
    return Job(step, playbook, dict(extravars), ("localhost",))


def test_jobs_run_forked_with_runner_events_and_status(setup) -> None:
    tmp_path, config = setup
    with playbook_server(config) as server:
        config.playbook_server = server.wait_ready()
        assert config.playbook_server
        first = run_job(_job("a/x:presync", "write.yml", dest=str(tmp_path / "out.txt"), content="一 one"), config,
                        threading.Event())
        again = run_job(_job("a/x:presync", "write.yml", dest=str(tmp_path / "out.txt"), content="一 one"), config,
                        threading.Event())
        failed = run_job(_job("a/x:verify", "fail.yml"), config, threading.Event())
        stats = server.stats()
    assert first.status == "successful" and first.changed == 1
    assert (tmp_path / "out.txt").read_text() == "一 one\n"
    assert again.status == "successful" and again.changed == 0  # idempotent, stats from runner's events
    assert failed.status == "failed" and failed.rc != 0 and "refused on purpose" in (failed.message or "")
    assert stats == {"forked": 3, "fallback": 0}
    assert not list((tmp_path / "jobs").glob("job-*"))  # job dirs (runner's env artifact) removed


def test_a_different_ansible_configuration_falls_back_to_exec(setup) -> None:
    tmp_path, config = setup
    with playbook_server(config) as server:
        config.playbook_server = server.wait_ready()
        config.extra_env = {"ANSIBLE_FORKS": "3"}  # read at import time: the warm server cannot honour it
        result = run_job(_job("a/x:presync", "write.yml", dest=str(tmp_path / "b.txt"), content="b"), config,
                         threading.Event())
        stats = server.stats()
    assert result.status == "successful" and (tmp_path / "b.txt").read_text() == "b\n"
    assert stats == {"forked": 0, "fallback": 1}


def test_cancel_kills_the_forked_playbook(setup) -> None:
    _, config = setup
    cancel = threading.Event()
    payloads, local_tmp = _payloads(), _ansible_local_tmp()
    with playbook_server(config) as server:
        config.playbook_server = server.wait_ready()
        # Cancel once the job's command runs (the job reached the server and its playbook forked).
        watcher = threading.Thread(target=lambda: wait_for(lambda: _sleepers(config.work_dir), 60) and cancel.set())
        watcher.start()
        result = run_job(_job("a/x:presync", "sleep.yml", seconds=600), config, cancel)
        watcher.join()
        assert cancel.is_set(), "the job's command never started"
        assert result.status == "canceled"
        wait_for(lambda: not _sleepers(config.work_dir), 10)
        assert not _sleepers(config.work_dir), "the playbook's command outlived the cancelled job"
        assert server.stats()["forked"] == 1
    assert _payloads() == payloads, "the killed module left its files in /tmp"
    assert _ansible_local_tmp() == local_tmp, "the killed playbook (or the server) left its local tmp"
    assert not list(config.work_dir.glob("job-*"))


def test_orphans_of_a_dead_run_are_reaped(setup) -> None:
    """The server's child records its process group; reap_orphans kills it if fjmig died."""
    tmp_path, config = setup
    cancel = threading.Event()
    with playbook_server(config) as server:
        config.playbook_server = server.wait_ready()
        thread = threading.Thread(target=run_job, args=(_job("a/x:presync", "sleep.yml", seconds=600), config, cancel))
        thread.start()
        wait_for(lambda: _sleepers(config.work_dir), 30)
        assert _sleepers(config.work_dir)
        recorded = sorted(p.name for p in (tmp_path / "jobs").glob("job-*/pgid*"))
        assert recorded == ["pgid", "pgid.play"]
        killed = reap_orphans(tmp_path / "jobs")
        assert len(killed) == 2
        # In a real reap fjmig is dead. Here its runner thread lives on, reading the job dir that
        # reap_orphans deleted; depending on when, ansible-runner fails at once or waits its 60 s
        # for the events directory before it gives up. Either way the job ends, as a failure.
        thread.join(timeout=90)
        assert not thread.is_alive()
    wait_for(lambda: not _sleepers(config.work_dir), 10)
    assert not _sleepers(config.work_dir)


PARENT = """
import sys, threading, time
sys.path.insert(0, {root!r})
from pathlib import Path
from orchestrator.execution.jobs import Job
from orchestrator.execution.runner import RunnerConfig, playbook_server, run_job
config = RunnerConfig(inventory=Path({inventory!r}), playbooks_dir=Path({playbooks!r}), work_dir=Path({work!r}),
                      control_dir=Path({control!r}))
server = playbook_server(config).__enter__()
config.playbook_server = server.wait_ready()
threading.Thread(target=run_job, args=(Job("a/x:presync", "sleep.yml", {{"seconds": 600}}, ("localhost",)), config,
                                       threading.Event())).start()
time.sleep(600)
"""


def test_a_killed_fjmig_leaves_no_playbook_behind(setup) -> None:
    """SIGKILL of the process that started the server: the server (parent-death signal), its
    child and the child's workers and their commands all go."""
    import subprocess
    import sys

    tmp_path, config = setup
    script = PARENT.format(root=str(ROOT), inventory=str(config.inventory),
                           playbooks=str(config.playbooks_dir), work=str(tmp_path / "jobs"),
                           control=str(config.control_dir))
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_for(lambda: _sleepers(tmp_path / "jobs"), 60)
        assert _sleepers(tmp_path / "jobs"), "the job did not start"
    finally:
        parent.kill()
        parent.wait()
    wait_for(lambda: not (_sleepers(tmp_path / "jobs") or _servers_of(tmp_path)), 15)
    assert not _sleepers(tmp_path / "jobs"), "a command of the killed run's playbook is still running"
    assert not _servers_of(tmp_path), "the killed run's playbook server (or a child) is still running"


def _servers_of(tmp_path: Path) -> list[int]:
    return processes(f"FJMIG_WORK_DIR={tmp_path / 'jobs'}".encode())


def _payloads() -> set[Path]:
    """What killed ansible modules leave in /tmp when TMPDIR is not the job's own."""
    return set(Path("/tmp").glob("ansible_*_payload_*"))


def _ansible_local_tmp() -> set[Path]:
    """ansible's local temporary directories in their default place."""
    return set((Path.home() / ".ansible" / "tmp").glob("ansible-local-*"))


def _sleepers(work_dir: Path) -> list[int]:
    """The `sleep 600` commands of jobs under WORK_DIR (they inherit their job's FJMIG_JOB_DIR)."""
    return processes(f"FJMIG_JOB_DIR={work_dir}/".encode(), cmdline=[b"sleep", b"600"])


def test_without_a_server_jobs_exec_ansible_playbook(setup, monkeypatch) -> None:
    tmp_path, config = setup
    monkeypatch.delenv("FJMIG_PLAYBOOK_SERVER", raising=False)
    assert config.playbook_server is None
    result = run_job(_job("a/x:presync", "write.yml", dest=str(tmp_path / "c.txt"), content="c"), config,
                     threading.Event())
    assert result.status == "successful" and (tmp_path / "c.txt").read_text() == "c\n"
