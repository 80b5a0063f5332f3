"""fjmig_raw: ansible.builtin.raw's command (through the connection, no Python started on the
host), then optionally a commit: a second command on the same host, in the same task, run only
when the first succeeded and the playbook that runs this task is still running.

Why: the cutover's switch is committed on the source (files/freeze_commit.sh) after the freeze's
final sync and before anything starts on the target. Taken by the source itself at the end of the
sync, it would be taken even when the control node has gone (killed, or cut off) and will never
switch. As a task of its own, it would add a task's cost to the freeze window (a worker process,
the result's events, the next task's start: Ansible's own work, on top of the command). Here it
runs in the worker that ran the sync, which first checks that its playbook still runs: a killed
ansible-playbook leaves its workers running (they call setsid()), and such an orphan must not
commit a switch that nobody will make. The sync's result reaches the playbook only once the commit
was tried: the freeze window holds one more command, not one more task.

Arguments:
  cmd: the command (as ansible.builtin.raw's free form; the caller quotes every value in it).
  commit: the commit's command (optional). Never run in check mode: the task is skipped there,
    as raw is, and when it sets check_mode: false (to run cmd as its own dry run) the commit is
    still not run.
Returns raw's keys (rc, stdout, stdout_lines, stderr, stderr_lines) for cmd, started_at and
ended_at (when cmd was sent and its result came back: epochs on the control node's clock, so that
a playbook can time what happened on the host against its own clock) and, when the commit was
tried, `commit` with the same keys for it. Fails (as raw) when cmd's rc is not 0, and when the
commit's rc is not 0 or it could not be tried (`commit.rc` is then null).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

NOT_RUN: dict[str, Any] = {"rc": None, "stdout": "", "stdout_lines": [], "stderr": "", "stderr_lines": []}
"""`commit` when the commit could not be tried; its keys are what raw returns of a command."""


def playbook_still_runs() -> bool:
    """Whether the ansible-playbook process that forked this worker is alive (multiprocessing's
    sentinel: no pid to be recycled)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        return parent.is_alive()
    return os.getppid() != 1


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("cmd", "commit"))
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars or {})
        if self._task.check_mode:  # as raw: a command cannot be run as a dry run
            result["skipped"] = True
            return result
        cmd, commit = self._task.args.get("cmd"), self._task.args.get("commit")
        if not isinstance(cmd, str) or not cmd.strip():
            raise AnsibleActionFail("fjmig_raw: cmd must be a command")
        if commit is not None and not isinstance(commit, str):
            raise AnsibleActionFail("fjmig_raw: commit must be a command")
        started_at = time.time()
        # executable=False, as raw: the login shell runs the command, with no `sh -c` around it
        result.update(self._low_level_execute_command(cmd, executable=False))
        result.update(started_at=started_at, ended_at=time.time())
        result["changed"] = True
        if result.get("rc") != 0:
            result.update(failed=True, msg="non-zero return code")
            return result
        if not commit or (task_vars or {}).get("ansible_check_mode"):
            return result
        if not playbook_still_runs():
            result.update(commit=dict(NOT_RUN), failed=True,
                          msg="not committed: the playbook stopped during the command")
            return result
        # sudoable=False: no terminal on the host for this one (a terminal is ~2 ms more).
        done = self._low_level_execute_command(commit, sudoable=False, executable=False)
        result["commit"] = {key: done.get(key) for key in NOT_RUN}
        if done.get("rc") != 0:
            said = (str(done.get("stdout") or "").strip() or str(done.get("stderr") or "").strip())[:300]
            message = f"the commit failed (rc {done.get('rc')})"
            result.update(failed=True, msg=f"{message}: {said}" if said else message)
        return result
