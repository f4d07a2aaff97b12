#!/usr/bin/env bash
# Prepare a Debian 12 host (as root) for the demo and the tests, with the Docker users run today:
# Engine 26 and docker-cli from Debian 13 (trixie), buildx from Debian unstable (sid, the buildx
# of current Docker CE and Desktop), the containerd image store, debootstrap for the offline base
# images, Debian's registry for push tests, qemu-user-static for arm64 builds, and openssh-server
# (an engine reached over ssh, in the tests: never started as a service here).
# Idempotent: installs only what is missing and starts dockerd only if no engine answers.
set -euo pipefail

log() { echo "setup-host: $*"; }

# trixie and sid at priority 100: nothing is taken from them unless asked for by name.
newer_suites() {
    local sources=/etc/apt/sources.list.d/docker-newer.sources
    local prefs=/etc/apt/preferences.d/docker-newer
    [ -f "$sources" ] && [ -f "$prefs" ] && return 1
    cat >"$sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cat >"$prefs" <<'EOF'
Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: *
Pin: release n=sid
Pin-Priority: 100
EOF
}

apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }

engine_version() { dpkg-query -W -f '${Version}' docker.io 2>/dev/null || true; }

updated=
apt_update() { [ -n "$updated" ] || { apt-get update -qq; updated=1; }; }

newer_suites || true
case "$(engine_version)" in
    26.*|27.*|28.*|29.*) ;;
    *)
        log "installing docker.io and docker-cli from trixie"
        apt_update
        apt_install docker.io/trixie docker-cli/trixie
        ;;
esac
if ! docker buildx version 2>/dev/null | grep -qE ' v?0\.(1[7-9]|[2-9][0-9])\.'; then
    apt_update
    if apt_install docker-buildx/sid; then
        log "installed docker-buildx from sid"
    else
        log "WARNING: docker-buildx from sid did not install; falling back to trixie's (older than"
        log "WARNING: 0.17, so Compose builds through the engine instead of bake)"
        apt_install docker-buildx/trixie
    fi
fi
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt_update
    apt_install "${need[@]}"
fi

# arm64 emulation for multi-platform builds: binfmt_misc mounted, qemu-aarch64 registered.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || log "WARNING: cannot mount binfmt_misc"
fi
if [ -e /proc/sys/fs/binfmt_misc/status ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 || log "WARNING: qemu-aarch64 not registered"
fi

# The containerd image store: the default of new Engine 29 installs, and what cache export needs.
mkdir -p /etc/docker
python3 - <<'PY'
import json, pathlib
path = pathlib.Path("/etc/docker/daemon.json")
config = json.loads(path.read_text()) if path.is_file() and path.read_text().strip() else {}
if not config.get("features", {}).get("containerd-snapshotter"):
    config.setdefault("features", {})["containerd-snapshotter"] = True
    path.write_text(json.dumps(config, indent=2) + "\n")
    print("setup-host: containerd image store on in /etc/docker/daemon.json")
PY

engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if ! engine_up; then
    log "starting dockerd (log: /var/log/dockerd.log)"
    setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
    for _ in $(seq 90); do engine_up && break; sleep 1; done
fi
engine_up || { echo "setup-host: dockerd did not start: see /var/log/dockerd.log" >&2; exit 1; }
store=$(docker info --format '{{range .DriverStatus}}{{index . 0}}={{index . 1}} {{end}}')
log "Docker Engine $(docker version --format '{{.Server.Version}}') is up;" \
    "buildx $(docker buildx version 2>/dev/null | awk '{print $2}'); store: ${store:-?}"
