#!/bin/bash
# Build a Debian root that boots with its own systemd under systemd-nspawn, with holosc
# installed by scripts/setup.sh --test run through sudo by an ordinary user (the way a
# person sets it up), and an unprivileged user without sudo for the rootless tests.
#   tests/distro/build-root.sh SUITE OUTDIR     (SUITE: bookworm or trixie; root needed)
# The host's resolver, CA certificates and pip configuration are copied in: pip and apt
# inside reach the same mirrors the host does (shared/testing/README.md).
set -euo pipefail
suite=$1 out=$2
repo=$(cd "$(dirname "$0")/../.." && pwd)
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources \
         2>/dev/null | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}

# What a booted container needs before setup.sh runs; setup.sh brings the rest.
# pipx: the rootless test installs holosc as a user would, in a venv, with pipx and with
# `pip install --user`.
packages=systemd,systemd-sysv,passwd,dbus,libpam-systemd,sudo,ca-certificates,python3,iproute2,procps,pipx

hooks=$(mktemp -d)
trap 'rm -rf "$hooks"' EXIT
cat > "$hooks/customize.sh" <<'HOOK'
#!/bin/bash
set -euo pipefail
root=$1 repo=$2
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
if [ -d /usr/local/share/ca-certificates ]; then
  cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"
if [ -f "$HOME/.config/pip/pip.conf" ]; then  # the builder's own pip settings, system-wide
  mkdir -p "$root/etc/xdg/pip" && cp "$HOME/.config/pip/pip.conf" "$root/etc/xdg/pip/pip.conf"
fi
mounted=()
unmount() { for dir in "${mounted[@]}"; do umount "$root$dir" && rmdir "$root$dir"; done; }
trap unmount EXIT
for dir in /opt/wheels /opt/pypi /opt/pypi-more; do  # local indexes pip.conf may name
  if [ -d "$dir" ]; then
    mkdir -p "$root$dir"
    mount --bind "$dir" "$root$dir" && mounted+=("$dir")
    mount -o remount,bind,ro "$root$dir"
  fi
done
# holos: the unprivileged user of the rootless tests (no sudo, not in kvm).
chroot "$root" useradd --create-home --uid 1500 --shell /bin/bash holos
# admin: sets holosc up with sudo, as the README tells people to.
chroot "$root" useradd --create-home --uid 1501 --shell /bin/bash admin
echo "admin ALL=(ALL) NOPASSWD: ALL" > "$root/etc/sudoers.d/admin"
mkdir -p "$root/opt/holosc"
(cd "$repo" && tar -c --exclude=.venv --exclude='*.egg-info' --exclude=__pycache__ \
  pyproject.toml README.md scripts holosc templates runtime-helpers) | tar -x -C "$root/opt/holosc"
chroot "$root" chown -R admin: /opt/holosc
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$root" \
  runuser -u admin -- env HOME=/home/admin /opt/holosc/scripts/setup.sh --test
# holosc's dependencies as wheels for this root's Python: the user installs of the
# rootless test run in the container, which has no network (holosc's own wheel comes
# from the checkout under test).
mkdir -p "$root/opt/wheelhouse" && chroot "$root" chown admin: /opt/wheelhouse
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$root" runuser -u admin -- env HOME=/home/admin \
  /opt/holosc/.venv/bin/pip wheel -q -w /opt/wheelhouse /opt/holosc
rm -f "$root"/opt/wheelhouse/holosc-*.whl
rm -rf "$root/opt/holosc/build"
chmod -R a+rX "$root/opt/holosc" "$root/opt/wheelhouse"
chroot "$root" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1 || true
HOOK
chmod +x "$hooks/customize.sh"

mmdebstrap --variant=apt --include="$packages" \
  --customize-hook="$hooks/customize.sh \"\$1\" $repo" \
  "$suite" "$out" "$mirror"
