#!/usr/bin/env bash
# Make a Docker engine answer `docker info`. Uses a running engine if there is one;
# otherwise, as root on Debian/Ubuntu, installs Debian's docker.io and starts it.
# Machines without systemd (CI sandboxes) get dockerd started by hand, logging to
# $DOCKERD_LOG, because nothing else would start it.
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/flaskstack-dockerd.log}

if docker info >/dev/null 2>&1; then
  echo "docker: using the running engine"
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "docker: no engine answers 'docker info', and this script can only install one as root" >&2
  echo "        on Debian/Ubuntu. Start Docker (or add your user to the docker group) and rerun." >&2
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker: installing docker.io from the distribution archive"
  # A third-party source that cannot be reached must not stop the install.
  apt-get update -qq || echo "docker: apt-get update reported errors; trying the install anyway" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

if [ "$(ps -o comm= -p 1)" = systemd ]; then
  systemctl start docker
else
  echo "docker: starting dockerd in the background (log: $DOCKERD_LOG)"
  nohup dockerd >"$DOCKERD_LOG" 2>&1 &
fi

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "docker: engine ready"
    exit 0
  fi
  sleep 0.5
done
echo "docker: the engine did not come up; see $DOCKERD_LOG" >&2
exit 1
