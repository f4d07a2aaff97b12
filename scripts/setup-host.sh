#!/usr/bin/env bash
# Prepare a Debian host (as root) for the demo and the tests: Debian's Docker Engine with
# BuildKit, debootstrap for the offline base images, and Debian's registry for push tests.
# Idempotent: installs only what is missing and starts dockerd only if no engine answers.
set -euo pipefail

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v docker-registry >/dev/null || need+=(docker-registry)
if ((${#need[@]})); then
    echo "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

engine_up() { python3 - <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("/var/run/docker.sock"); s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
    sys.exit(0 if b"OK" in s.recv(1024) else 1)
except OSError:
    sys.exit(1)
PY
}

if ! engine_up; then
    echo "starting dockerd (log: /var/log/dockerd.log)"
    setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 60); do engine_up && break; sleep 1; done
fi
engine_up || { echo "dockerd did not start: see /var/log/dockerd.log" >&2; exit 1; }
echo "Docker Engine is up"
