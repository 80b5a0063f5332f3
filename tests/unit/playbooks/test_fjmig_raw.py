"""playbooks/action_plugins/fjmig_raw.py, through a real ansible-playbook on this machine (the
local connection): the commit runs after the command, only when the command succeeded, fails the
task when it fails, and is never taken by a worker whose playbook has died."""

from __future__ import annotations

import json
import multiprocessing
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import ROOT
from tests.support.waiting import wait_for

PLAYBOOKS = ROOT / "playbooks"


def project_with(tmp_path: Path, cmd: str, commit: str | None) -> tuple[Path, Path]:
    """A playbook of one fjmig_raw task on localhost in a project with the plugin beside it (as in
    playbooks/); the project and where the playbook writes the task's registered result."""
    project = tmp_path / "project"
    (project / "action_plugins").mkdir(parents=True)
    (project / "action_plugins" / "fjmig_raw.py").write_text(
        (PLAYBOOKS / "action_plugins" / "fjmig_raw.py").read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "result.json"
    args = {"cmd": cmd, **({"commit": commit} if commit is not None else {})}
    (project / "play.yml").write_text(yaml.safe_dump([{
        "name": "One fjmig_raw task", "hosts": "localhost", "gather_facts": False,
        "tasks": [
            # check_mode: false, as tasks/rsync.yml: in check mode the command runs as its own dry run
            {"name": "Run it", "fjmig_raw": args, "register": "done", "ignore_errors": True, "check_mode": False},
            {"name": "Keep its result", "ansible.builtin.copy": {"content": "{{ done | to_json }}", "dest": str(out),
                                                                   "mode": "0600"}, "check_mode": False},
        ]}]), encoding="utf-8")
    return project, out


ENV = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "False",
       "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False", "PYTHONWARNINGS": "ignore"}
ARGV = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e",
        f"ansible_python_interpreter={sys.executable}", "play.yml"]


def play(tmp_path: Path, cmd: str, commit: str | None, *options: str) -> tuple[int, dict]:
    """Run one fjmig_raw task on localhost (ansible-playbook OPTIONS); its registered result."""
    project, out = project_with(tmp_path, cmd, commit)
    done = subprocess.run([*ARGV, *options], cwd=project, env=ENV, capture_output=True, text=True, timeout=120,
                          check=False)
    assert out.exists(), done.stdout + done.stderr
    return done.returncode, json.loads(out.read_text(encoding="utf-8"))


def test_the_commit_runs_after_the_command_in_the_same_task(tmp_path: Path) -> None:
    log = tmp_path / "log"
    q = shlex.quote(str(log))
    _, result = play(tmp_path, f"echo synced >> {q}; echo copied", f"cat {q} && echo committed >> {q}")
    assert result["rc"] == 0 and result["stdout_lines"] == ["copied"]
    assert result["commit"]["rc"] == 0 and result["commit"]["stdout_lines"] == ["synced"]
    assert not result.get("failed")
    assert log.read_text().splitlines() == ["synced", "committed"]


def test_check_mode_runs_the_command_and_never_the_commit(tmp_path: Path) -> None:
    log = tmp_path / "log"
    _, result = play(tmp_path, "echo would-copy", f"echo committed > {shlex.quote(str(log))}", "--check")
    assert result["rc"] == 0 and result["stdout_lines"] == ["would-copy"] and "commit" not in result
    assert not log.exists()


def test_no_commit_after_a_failed_command(tmp_path: Path) -> None:
    log = tmp_path / "log"
    _, result = play(tmp_path, "exit 5", f"echo committed > {shlex.quote(str(log))}")
    assert result["failed"] and result["rc"] == 5 and "commit" not in result
    assert not log.exists()


def test_a_commit_that_fails_fails_the_task_with_its_output(tmp_path: Path) -> None:
    _, result = play(tmp_path, "echo copied", "echo 'aborted 1700000000.5'; exit 3")
    assert result["failed"] and result["rc"] == 0
    assert result["commit"]["rc"] == 3 and result["commit"]["stdout_lines"] == ["aborted 1700000000.5"]
    assert "commit" in result["msg"]


def test_without_a_commit_it_is_raw(tmp_path: Path) -> None:
    _, result = play(tmp_path, "printf 'a\\nb\\n'", None)
    assert result["rc"] == 0 and result["stdout_lines"] == ["a", "b"] and "commit" not in result


def test_it_says_when_the_command_was_sent_and_came_back(tmp_path: Path) -> None:
    _, result = play(tmp_path, "date +%s.%N", None)
    ran_at = float(result["stdout_lines"][0])
    assert result["started_at"] <= ran_at <= result["ended_at"]


def _worker(release: int, report: int) -> None:
    """An ansible worker's place: a fork of the playbook process, reporting once released."""
    sys.path.insert(0, str(PLAYBOOKS / "action_plugins"))
    from fjmig_raw import playbook_still_runs

    os.read(release, 1)
    os.write(report, b"1" if playbook_still_runs() else b"0")


def _playbook(release: int, report: int, orphan: bool) -> None:
    """The playbook process: forks its worker, then dies before releasing it (orphan) or not."""
    worker = multiprocessing.get_context("fork").Process(target=_worker, args=(release, report))
    worker.start()
    if orphan:
        os._exit(0)  # dies as a SIGKILLed playbook does: its worker runs on
    worker.join()


def worker_sees_its_playbook(orphan: bool) -> bool:
    release_r, release_w = os.pipe()
    report_r, report_w = os.pipe()
    playbook = multiprocessing.get_context("fork").Process(target=_playbook, args=(release_r, report_w, orphan))
    playbook.start()
    if orphan:
        playbook.join()  # the playbook process is gone before its worker looks
    os.write(release_w, b"x")
    answer = os.read(report_r, 1)
    playbook.join()
    for fd in (release_r, release_w, report_r, report_w):
        os.close(fd)
    return answer == b"1"


def test_a_worker_whose_playbook_died_knows_it() -> None:
    assert worker_sees_its_playbook(orphan=False)
    assert not worker_sees_its_playbook(orphan=True)


def test_a_killed_ansible_playbook_never_commits(tmp_path: Path) -> None:
    """ansible-playbook SIGKILLed while the command runs: its worker (which called setsid, so it
    lives on) finishes the command and does not commit."""
    started, release, done, committed = (tmp_path / name for name in ("started", "release", "done", "committed"))
    q = {name: shlex.quote(str(path)) for name, path in
         (("started", started), ("release", release), ("done", done), ("committed", committed))}
    # $PPID: the worker (the local connection runs the command in a shell it starts)
    cmd = (f"echo $PPID > {q['started']}; while [ ! -e {q['release']} ]; do sleep 0.01; done; "
           f"echo synced > {q['done']}")
    project, _ = project_with(tmp_path, cmd, f"echo committed > {q['committed']}")
    playbook = subprocess.Popen(ARGV, cwd=project, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: started.exists() and started.read_text().strip(), 60), "the command never started"
        worker = int(started.read_text())
        assert worker != playbook.pid
        playbook.send_signal(signal.SIGKILL)
        playbook.wait()
        release.touch()
        assert wait_for(done.exists, 30), "the command did not finish after its playbook died"
        assert wait_for(lambda: not Path(f"/proc/{worker}").exists()
                        or "Z" in Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[:1], 30)
        assert not committed.exists(), "an orphaned worker committed"
    finally:
        if playbook.poll() is None:
            playbook.kill()
