#!/bin/bash
# Set up holosc on Debian 12 or 13, as root or as a user with sudo: the host tools it
# drives (QEMU, ssh, OVMF, virtiofsd), a virtualenv in .venv with holosc installed, and
# the runtime helpers linked into /usr/local/bin, where systemd finds the commands that
# units name.
#   scripts/setup.sh          to use holosc
#   scripts/setup.sh --test   also the tools the test suite checks the output with
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

packages=(python3 python3-venv python3-pip qemu-system-x86 qemu-utils openssh-client ovmf
          iproute2 procps)
if [ "${1:-}" = --test ]; then
  # For the tests: shellcheck, cloud-init (schema checks), genisoimage (isoinfo), sshd,
  # busybox and mmdebstrap (test guests and roots), dpkg-dev (apt-get download of a
  # kernel), systemd-container (systemd-nspawn boots the Debian 12 and 13 test roots),
  # iputils-ping (the e2e test pings a guest on the LAN bridge from the host side).
  packages+=(shellcheck cloud-init genisoimage openssh-server busybox-static mmdebstrap
             dpkg-dev systemd util-linux e2fsprogs systemd-container iputils-ping)
fi
export DEBIAN_FRONTEND=noninteractive
[ -d .venv ] || mkdir .venv
log=.venv/setup.log
# virtiofsd: its own package from Debian 13 on; Debian 12 ships it in qemu-system-common.
if ! { $SUDO apt-get update -qq &&
       if apt-cache show virtiofsd >/dev/null 2>&1; then packages+=(virtiofsd); fi &&
       $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2; echo "setup.sh: apt-get failed (log above)" >&2; exit 1
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
extras=""; [ "${1:-}" = --test ] && extras="[test]"
# Tool output goes to a log: the first screen says one thing, that holosc is ready.
if ! { .venv/bin/python -m pip install -q --upgrade pip &&
       .venv/bin/python -m pip install -q -e ".$extras"; } >"$log" 2>&1; then
  cat "$log" >&2; echo "setup.sh: pip install failed (log above)" >&2; exit 1
fi

# systemd resolves bare command names in ExecStart=/ExecStop= through a fixed path that
# includes /usr/local/bin (systemd.service(5)); the compiled units call the helpers so.
for helper in holos-qmp-stop holos-health holos-seed holos-image holos-bake holos-switch holos-console-log; do
  $SUDO ln -sf "$PWD/.venv/bin/$helper" "/usr/local/bin/$helper"
done
echo "holosc is ready: $PWD/.venv/bin/holosc"
