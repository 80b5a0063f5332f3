"""Per-host OpenSSH: keys and sshd configuration (launch.py starts the daemons).

Keys are generated in-process (ed25519, OpenSSH format) rather than with one ssh-keygen per
host: it is the same key format and keeps `lab up` fast. Every host key is pinned in known_hosts
files before any sshd starts: nothing is ever trusted on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SSHD_CONFIG = """\
# fjmig lab hosts' sshd: keys only, root by key only. Each host adds its own
# -o ListenAddress=... -o HostKey=... -o PidFile=... on the command line.
Port 22
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 200:30:400
MaxSessions 64
AcceptEnv LANG LC_*
# the host's own temporary files (a killed module's payload, say) go with the host at `lab down`
SetEnv TMPDIR=/run/tmp
Subsystem sftp internal-sftp
"""


def sshd_options(address: str, host_key: Path, pid_file: Path) -> list[str]:
    """The per-host part of the configuration (command-line `-o` options override the file)."""
    return [f"ListenAddress={address}", f"HostKey={host_key}", f"PidFile={pid_file}"]


@dataclass(frozen=True)
class KeyPair:
    private: bytes
    public: str
    """`ssh-ed25519 AAAA... comment`"""

    def write(self, path: Path, public: bool = True) -> None:
        """Private key 0600 at `path`, and the public key beside it as `<path>.pub`."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.private)
        os.chmod(path, 0o600)
        if public:
            Path(f"{path}.pub").write_text(self.public + "\n")


def keypair(comment: str) -> KeyPair:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return KeyPair(private=private, public=f"{public.decode()} {comment}")


def key_type_and_blob(public: str) -> str:
    """`ssh-ed25519 AAAA...` without the comment, as known_hosts wants it."""
    return " ".join(public.split()[:2])


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
