"""What a job through an execution node sends to the node: ansible-runner's transmit stream, captured
in place of the SSH channel (a local `cat`). It holds the job (project, inventory, extra variables
with the node's own key and pins, as paths on the node) and no secret."""

from __future__ import annotations

import base64
import io
import json
import threading
import zipfile
from pathlib import Path

import yaml

from orchestrator.execution import runner
from orchestrator.execution.jobs import Job
from orchestrator.execution.nodes import Node
from orchestrator.execution.remote import NodeLink

KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
       "-----END OPENSSH PRIVATE KEY-----\n")


class _Links:
    def __init__(self, link: NodeLink) -> None:
        self.links = {link.node.name: link}


def test_the_stream_holds_the_job_and_no_secret(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    key.write_text(KEY)
    key.chmod(0o600)
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"vars": {"ansible_ssh_private_key_file": str(key)},
                                             "hosts": {"src": {}, "tgt": {}}}}))
    node = Node(name="node-a", address="198.18.0.9", user="root", port=22, key=str(key), known_hosts="/kh",
                venv="/opt/node-env", host_key="/root/.ssh/fjmig_node", host_known_hosts="/root/.ssh/known_hosts",
                serves=("all",), reach=frozenset({"src", "tgt"}))
    link = NodeLink(node, tmp_path, "journal-id", warm=False, playbooks_dir=runner.PLAYBOOKS_DIR)
    link.info = {"code": "/root/.fjmig/node/code-0"}
    link.ready = lambda: None  # type: ignore[method-assign]
    captured = tmp_path / "stream"
    link.ssh_argv = lambda remote, master=False: ["sh", "-c", 'cat > "$1"', "sh", str(captured)]  # type: ignore[method-assign]
    config = runner.RunnerConfig(inventory=inventory, work_dir=tmp_path / "jobs", job_tag="journal-id")
    config.nodes = _Links(link)  # type: ignore[assignment]
    job = Job("d/s:presync", "presync.yml", {"dept": "d", "source_host": "src"}, ("src", "tgt"))

    result = runner._run_on_node(job, config, threading.Event(), None, "node-a")

    assert result.status == "failed" and result.node == "node-a", result.message  # (`cat` sends no events)
    stream = captured.read_bytes()
    assert b"PRIVATE KEY" not in stream and KEY.encode() not in stream
    head, rest = stream.split(b"\n", 1)
    kwargs = json.loads(head)["kwargs"]
    assert kwargs["playbook"] == "presync.yml" and kwargs["inventory"] == "inventory/inventory.json"
    size_line, blob = rest.split(b"\n", 1)
    size = json.loads(size_line)["zipfile"]
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(blob[:blob.rindex(b'{"eof"')])))
    assert len(archive.fp.getvalue()) == size  # type: ignore[union-attr]
    names = set(archive.namelist())
    assert {"env/extravars", "env/settings", "inventory/inventory.json", "project/presync.yml",
            "project/cancel.yml", "project/ansible.cfg"} <= names
    for name in names:
        assert b"PRIVATE KEY" not in archive.read(name), name
    envvars = yaml.safe_load(archive.read("env/envvars"))  # (runner's transmit writes them into the dir)
    assert envvars["PATH"].startswith("/opt/node-env/bin:") and envvars["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert envvars["TMPDIR"].startswith("/root/.fjmig/node/jobs/job-")  # the job's own, on the node
    extravars = json.loads(archive.read("env/extravars"))
    assert extravars["fjmig_job_token"] == "journal-id:d/s:presync"
    assert extravars["ansible_ssh_private_key_file"] == "/root/.ssh/fjmig_node"  # a path on the node
    assert "UserKnownHostsFile=/root/.ssh/known_hosts" in extravars["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in extravars["ansible_ssh_common_args"]
    assert not list((tmp_path / "jobs").glob("job-*")), "the job dir must go"
