"""Debian's sshd on 127.0.0.1, as a remote Docker host reached at ssh://root@127.0.0.1:PORT.

`serve(folder)` generates a host key and a client key, writes sshd's own config (its port, that
key alone, no passwords, no PAM) and an ssh client config that trusts that host key alone, and
starts `sshd -D`, stopped when the block ends. It yields the endpoint and a folder to put first
on PATH: an `ssh` there runs the real client with that config, which is what the Docker CLI,
Compose, buildx and the Docker SDK (use_ssh_client) run to reach an ssh:// engine. The remote
side runs `docker system dial-stdio` as root, on the engine `docker_host` names.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scripts.local_registry import free_port

SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class Server:
    """A running sshd: its endpoint, the PATH folder with its `ssh`, and its log."""

    url: str  # ssh://root@127.0.0.1:PORT
    bin: Path  # put first on PATH
    log: Path

    def connections(self) -> int:
        """How many sessions sshd has accepted so far (one line each in its log)."""
        return self.log.read_text(errors="replace").count("Accepted publickey for root")


def _keygen(path: Path) -> str:
    """A new ed25519 key pair at `path` (no passphrase); the public key's line."""
    cmd = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "uvdocker-test", "-f", str(path)]
    subprocess.run(cmd, check=True)
    return Path(f"{path}.pub").read_text().strip()


@contextmanager
def serve(folder: Path, docker_host: str = "unix:///var/run/docker.sock") -> Iterator[Server]:
    """sshd on 127.0.0.1 at a free port while the block runs, for root with a key of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    host_key = _keygen(folder / "host_key")
    (folder / "authorized_keys").write_text(_keygen(folder / "client_key") + "\n")
    (folder / "authorized_keys").chmod(0o600)
    port = free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\n"
        f"HostKey {folder / 'host_key'}\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nLogLevel VERBOSE\n"
        # The keys live in a test's temporary folder, under /tmp: StrictModes refuses any
        # folder above authorized_keys that others may write to, sticky bit or not.
        "StrictModes no\n"
        # The remote docker CLI's engine: this one, whatever root's own config says.
        f"SetEnv DOCKER_HOST={docker_host}\n"
    )
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}\n")
    (folder / "ssh_config").write_text(
        "Host 127.0.0.1\n"
        f"  IdentityFile {folder / 'client_key'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {folder / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n"
    )
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(
        f'#!/bin/sh\nexec {shutil.which("ssh")} -F {folder / "ssh_config"} "$@"\n'
    )
    (bin_dir / "ssh").chmod(0o755)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    log = folder / "sshd.log"
    cmd = [str(SSHD), "-D", "-f", str(folder / "sshd_config"), "-E", str(log)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited {proc.returncode}: {log.read_text()[-500:]}")
        yield Server(f"ssh://root@127.0.0.1:{port}", bin_dir, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
