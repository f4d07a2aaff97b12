#!/usr/bin/env python3
"""Another Docker Engine on this host ("engine B"): a second machine for tests and the benchmark.

    python scripts/second_engine.py start NAME [--store classic|containerd]   # prints DOCKER_HOST
    python scripts/second_engine.py stop NAME [--keep-data]

Each engine has its own data root, exec root (and so its own containerd), pidfile, socket and
bridge, and leaves iptables to the host's engine. It never uses `--bridge=none`: a dockerd
started that way deletes the first engine's docker0. Its build steps reach the network through
NAT rules of its own (the host engine keeps its iptables chains). Needs root and docker.io.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

STORES = ("classic", "containerd")


@dataclass(frozen=True)
class Engine:
    """Where one named engine keeps everything."""

    name: str

    @property
    def data_root(self) -> Path:
        return Path(f"/var/lib/docker-{self.name}")

    @property
    def exec_root(self) -> Path:
        return Path(f"/run/docker-{self.name}")

    @property
    def socket(self) -> Path:
        return Path(f"/run/docker-{self.name}.sock")

    @property
    def pidfile(self) -> Path:
        return Path(f"/run/docker-{self.name}.pid")

    @property
    def config(self) -> Path:
        return Path(f"/etc/docker/daemon-{self.name}.json")

    @property
    def log(self) -> Path:
        return Path(f"/var/log/dockerd-{self.name}.log")

    @property
    def bridge(self) -> str:
        return f"br-{hashlib.sha256(self.name.encode()).hexdigest()[:8]}"  # at most 15 chars

    @property
    def subnet(self) -> str:
        """The bridge's address: the one it has, else a /24 of 172.31.0.0/16 that no interface
        of this host uses, tried from one picked by name (the host's engine has 172.17.0.0/16).
        Two names can hash alike, and a second bridge on a subnet in use cuts both off."""
        found = re.search(r"inet (\S+)", _ip_addresses(self.bridge))
        if found:
            return found[1]
        used = set(re.findall(r"inet 172\.31\.(\d+)\.", _ip_addresses()))
        first = int(hashlib.sha256(self.name.encode()).hexdigest(), 16) % 250
        for step in range(250):
            third = (first + step) % 250 + 1
            if str(third) not in used:
                return f"172.31.{third}.1/24"
        raise SystemExit("second_engine: every /24 of 172.31.0.0/16 is in use")

    @property
    def gateway(self) -> str:
        """The bridge's address: where build steps on this engine reach the host."""
        return self.subnet.split("/")[0]

    @property
    def host(self) -> str:
        """DOCKER_HOST for this engine."""
        return f"unix://{self.socket}"


def _ip_addresses(device: str = "") -> str:
    """`ip -4 addr show [DEVICE]`: "" when there is no such device."""
    cmd = ["ip", "-4", "addr", "show", *([device] if device else [])]
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout


def nat_rules(engine: Engine, subnet: str = "") -> list[list[str]]:
    """iptables rules that let the engine's bridge reach the network, as the host's has them."""
    network = (subnet or engine.subnet).rsplit(".", 1)[0] + ".0/24"
    bridge = engine.bridge
    return [
        ["-t", "nat", "POSTROUTING", "-s", network, "!", "-o", bridge, "-j", "MASQUERADE"],
        ["-t", "filter", "FORWARD", "-i", bridge, "!", "-o", bridge, "-j", "ACCEPT"],
        [
            "-t",
            "filter",
            "FORWARD",
            "-o",
            bridge,
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
            "-j",
            "ACCEPT",
        ],
    ]


def iptables(action: str, rule: list[str]) -> bool:
    """Run `iptables -t TABLE ACTION CHAIN ...`; True when it succeeded."""
    table, chain, spec = rule[:2], rule[2], rule[3:]
    return (
        subprocess.run(["iptables", *table, action, chain, *spec], capture_output=True).returncode
        == 0
    )


def answers(engine: Engine) -> bool:
    """True when the engine's API answers on its socket."""
    probe = subprocess.run(
        ["docker", "-H", engine.host, "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def start(name: str, store: str = "classic", timeout: float = 90) -> str:
    """Start engine `name` (if it is not running) with the given image store; its DOCKER_HOST."""
    if store not in STORES:
        raise SystemExit(f"second_engine: --store must be one of {', '.join(STORES)}")
    engine = Engine(name)
    if answers(engine):
        return engine.host
    engine.config.parent.mkdir(parents=True, exist_ok=True)
    features = {"containerd-snapshotter": store == "containerd"}
    engine.config.write_text(json.dumps({"features": features}, indent=2) + "\n")
    with (Path("/run") / "second-engine.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two engines starting at once pick different subnets
        if subprocess.run(["ip", "link", "show", engine.bridge], capture_output=True).returncode:
            subnet = engine.subnet
            subprocess.run(["ip", "link", "add", engine.bridge, "type", "bridge"], check=True)
            subprocess.run(["ip", "addr", "add", subnet, "dev", engine.bridge], check=True)
    subprocess.run(["ip", "link", "set", engine.bridge, "up"], check=True)
    for rule in nat_rules(engine):
        if not iptables("-C", rule):
            iptables("-I", rule)
    cmd = [
        "dockerd",
        f"--config-file={engine.config}",
        f"--data-root={engine.data_root}",
        f"--exec-root={engine.exec_root}",
        f"--pidfile={engine.pidfile}",
        f"--host={engine.host}",
        f"--bridge={engine.bridge}",
        f"--containerd-namespace=moby-{name}",
        f"--containerd-plugins-namespace=plugins-moby-{name}",
        "--iptables=false",
        "--ip6tables=false",
    ]
    with engine.log.open("ab") as log:
        subprocess.Popen(
            cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while not answers(engine):
        if time.monotonic() > deadline:
            raise SystemExit(f"second_engine: dockerd {name} did not start: see {engine.log}")
        time.sleep(0.5)
    return engine.host


def load(docker_host: str, images: list[str]) -> None:
    """Copy `images` from the host's engine into the engine at `docker_host` (its own pull):
    stand-in base images, which no registry serves."""
    save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
    loaded = subprocess.run(
        ["docker", "-H", docker_host, "load", "-q"], stdin=save.stdout, capture_output=True
    )
    save.stdout.close()
    if save.wait() or loaded.returncode:
        raise SystemExit(f"second_engine: loading {', '.join(images)} failed: {loaded.stderr}")


def alive(pid: int) -> bool:
    """Whether process `pid` still runs. A dockerd that start() launched from this process is its
    child: once it exits it is reaped here, or it would linger as a zombie until we exit."""
    with contextlib.suppress(ChildProcessError):  # not our child: its parent reaps it
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop(name: str, keep_data: bool = False, timeout: float = 60) -> None:
    """Stop engine `name`, remove its bridge and (unless keep_data) its data root."""
    engine = Engine(name)
    if engine.pidfile.exists():
        pid = engine.pidfile.read_text().strip()
        subprocess.run(["kill", pid], check=False)
        deadline = time.monotonic() + timeout
        while alive(int(pid)) and time.monotonic() < deadline:
            time.sleep(0.5)
    subnet = engine.subnet  # read from the bridge, before it goes
    subprocess.run(["ip", "link", "delete", engine.bridge], capture_output=True, check=False)
    for rule in nat_rules(engine, subnet):
        while iptables("-D", rule):
            pass
    if not keep_data:
        # The data root can hold mounts a crashed engine left behind: unmount before removing.
        subprocess.run(
            [
                "sh",
                "-c",
                f"grep -o ' {engine.data_root}[^ ]*' /proc/mounts | sort -r | "
                "xargs -r -n1 umount -l",
            ],
            check=False,
        )
        shutil.rmtree(engine.data_root, ignore_errors=True)
        shutil.rmtree(engine.exec_root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("name", help="a short name: letters and digits")
    parser.add_argument("--store", choices=STORES, default="classic")
    parser.add_argument("--keep-data", action="store_true")
    args = parser.parse_args()
    if not args.name.isalnum():
        parser.error("the name must be letters and digits")
    if args.action == "start":
        print(start(args.name, args.store))
    else:
        stop(args.name, args.keep_data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
