#!/usr/bin/env bash
# Build a Debian systemd image for Molecule without a registry: debootstrap a
# minimal rootfs and `docker import` it. Skips when the image already exists.
# curl is in it for the tests (what an operator's workstation would have).
# With `ssh`, the image is a host reached the way users reach a VM: sshd, and a
# sudo user `deploy` (passwordless sudo, key only) whose authorized key is read
# from /etc/ssh/authorized_keys/deploy, which the test run mounts (a key made
# per run, never in the image).
# Usage: build-image.sh SUITE IMAGE [ssh]   (e.g. bookworm flaskstack/systemd:debian12)
set -euo pipefail

suite=${1:?suite, e.g. bookworm}
image=${2:?image name, e.g. flaskstack/systemd:debian12}
variant=${3:-}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# Ubuntu keeps python3-pymysql in universe: APT_COMPONENTS="main universe".
components=${APT_COMPONENTS:-main}
here=$(cd "$(dirname "$0")" && pwd)

# Images carry the hash of their recipe (this script, the files it copies, the
# variant and the sources): a changed recipe rebuilds them.
recipe=$( { cat "$0" "$here"/image/*; echo "$variant $mirror $security_mirror $components"; } | sha256sum | cut -c1-12)
built=$(docker image inspect --format '{{ index .Config.Labels "flaskstack.recipe" }}' "$image" 2>/dev/null || true)
if [ "$built" = "$recipe" ]; then
  echo "image: $image present, not rebuilt"
  exit 0
fi

# Builds run side by side (build-images.sh): one installs debootstrap, the others wait.
install_debootstrap() {
  command -v debootstrap >/dev/null 2>&1 && return
  apt-get update -qq || echo "image: apt-get update reported errors; trying the install anyway" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}
if ! command -v debootstrap >/dev/null 2>&1; then
  ( flock 9 && install_debootstrap ) 9>/tmp/flaskstack-debootstrap-install.lock
fi

rootfs=$(mktemp -d "/var/tmp/flaskstack-rootfs-$suite.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

packages=systemd,systemd-sysv,python3,python3-apt,sudo,ca-certificates,iproute2,dbus,procps,curl
[ "$variant" = ssh ] && packages+=,openssh-server

echo "image: debootstrap $suite (about a minute)"
debootstrap --variant=minbase --include="$packages" --components="${components// /,}" \
  "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"

case "$suite" in
  sid | unstable)
    # Unstable has no -updates or -security suites. A fixed snapshot mirror
    # serves a Release file past its Valid-Until date: accept it (in the image
    # only; the roles never change apt's checks).
    echo "deb $mirror $suite $components" >"$rootfs/etc/apt/sources.list"
    echo 'Acquire::Check-Valid-Until "false";' >"$rootfs/etc/apt/apt.conf.d/99snapshot-mirror"
    ;;
  *)
    cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $suite $components
deb $mirror $suite-updates $components
deb $security_mirror $suite-security $components
SOURCES
    ;;
esac

# systemd >= 258 needs a cgroup2 tree of its own on a cgroup v1 host (the script says how).
install -m 0755 "$here/image/cgroup2-init" "$rootfs/usr/local/sbin/cgroup2-init"

if [ "$variant" = ssh ]; then
  chroot "$rootfs" useradd --create-home --shell /bin/bash deploy
  echo 'deploy ALL=(ALL) NOPASSWD: ALL' >"$rootfs/etc/sudoers.d/deploy"
  chmod 0440 "$rootfs/etc/sudoers.d/deploy"
  install -m 0644 "$here/image/sshd-flaskstack.conf" "$rootfs/etc/ssh/sshd_config.d/flaskstack.conf"
  mkdir -p "$rootfs/etc/ssh/authorized_keys"
  # Each container makes its own host keys at first boot, not one set per image.
  rm -f "$rootfs"/etc/ssh/ssh_host_*
  install -m 0644 "$here/image/ssh-hostkeys.service" "$rootfs/etc/systemd/system/ssh-hostkeys.service"
  chroot "$rootfs" systemctl enable ssh-hostkeys.service >/dev/null 2>&1
fi

# Trust the CAs this host trusts, so pip inside the container passes a
# TLS-inspecting egress the same way the host does.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >/dev/null
fi
# pip from PyPI ignores the system store unless told.
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"

# A container has no consoles, and apt timers would take the dpkg lock mid-converge.
rm -f "$rootfs/etc/systemd/system/getty.target.wants/getty@tty1.service" \
      "$rootfs"/etc/systemd/system/timers.target.wants/*.timer \
      "$rootfs/etc/systemd/system/timers.target.wants/e2scrub_reap.service" \
      "$rootfs/etc/systemd/system/default.target.wants/e2scrub_reap.service"
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/*
# Empty lists are stale lists: date them so apt's cache_valid_time updates them.
touch -d @0 "$rootfs/var/lib/apt/lists"
: >"$rootfs/etc/machine-id"

tar -C "$rootfs" -c . | docker import \
  --change 'ENV container=docker' \
  --change "LABEL flaskstack.recipe=$recipe" \
  --change 'CMD ["/sbin/init"]' - "$image" >/dev/null
echo "image: built $image"
