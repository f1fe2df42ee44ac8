#!/bin/bash
# Build the small Debian bookworm guest of the end-to-end tests (adapted from the measured
# script in the project's testing notes). Needs root and mmdebstrap; uses the apt sources this
# machine already has (APT_SOURCES). The image cache is keyed on this file's hash: edit it and
# the tests rebuild the image.
#
# Output in OUTDIR: base.raw (1 GiB sparse ext4, label root, mounted as /dev/vda), vmlinuz and
# initrd.img of the Debian cloud kernel for direct kernel boot:
#   -kernel vmlinuz -initrd initrd.img -append "root=/dev/vda rw console=ttyS0"
#
# What the tests need in the guest: systemd + udev, dbus and systemd-logind (ACPI power button
# for a graceful QMP system_powerdown), cloud-init with only the NoCloud datasource, networkd
# (cloud-init renders the v2 network-config for it), openssh-server, sudo, e2fsprogs (mkfs.ext4),
# util-linux + mount (mount, mountpoint, blkid), iputils-ping and python3 (http.server).
# The cloud kernel has no 9p; virtiofs is a module (fs/fuse/virtiofs.ko) that stays in the root
# file system and is loaded on demand by `mount -t virtiofs` (the kernel asks for fs-virtiofs).
set -euo pipefail
OUT=${1:?usage: build-guest-image.sh OUTDIR}
rm -rf "$OUT"; mkdir -p "$OUT"
ROOT="$OUT/rootfs"
PKGS=systemd,systemd-sysv,udev,dbus,cloud-init,openssh-server,iproute2,iputils-ping,sudo
PKGS+=,e2fsprogs,util-linux,mount,kmod,python3,linux-image-cloud-amd64,initramfs-tools,zstd
mmdebstrap --mode=root --variant=apt --include="$PKGS" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  `# A small initramfs: only what finds the root disk (ext4 is built into the kernel).` \
  --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && printf "MODULES=list\nCOMPRESS=zstd\n" > "$1/etc/initramfs-tools/conf.d/guest.conf" && printf "virtio_pci\nvirtio_blk\nvirtio_net\n" > "$1/etc/initramfs-tools/modules"' \
  --customize-hook='echo "/dev/vda / ext4 defaults,noatime 0 1" > "$1/etc/fstab"' \
  --customize-hook='mkdir -p "$1/etc/cloud/cloud.cfg.d" && cat > "$1/etc/cloud/cloud.cfg.d/90-guest.cfg" <<EOC
datasource_list: [ NoCloud, None ]
system_info:
  network:
    renderers: [ networkd ]
ssh_genkeytypes: [ ed25519 ]
locale: false
resize_rootfs: false
growpart: { mode: "off" }
cloud_init_modules: [ seed_random, bootcmd, write-files, set_hostname, update_hostname, update_etc_hosts, users-groups, ssh ]
cloud_config_modules: [ set-passwords, timezone, runcmd ]
cloud_final_modules: [ write-files-deferred, scripts-per-once, scripts-per-boot, scripts-per-instance, scripts-user, final-message, power-state-change ]
EOC' \
  `# Drop module trees no test guest uses (keeps fs/fuse: virtiofs), then re-index.` \
  --customize-hook='cd "$1"/lib/modules/*/kernel && rm -rf drivers/infiniband drivers/comedi drivers/target drivers/md drivers/nvdimm drivers/nvme drivers/hid drivers/misc drivers/gpu drivers/media drivers/net/wireless drivers/usb sound fs/nfs fs/nfsd fs/ocfs2 fs/btrfs fs/xfs fs/ceph fs/smb fs/cifs fs/gfs2 net/sunrpc net/netfilter net/ceph net/bridge net/wireless net/mac80211 && chroot "$1" sh -c "depmod -a \$(ls /lib/modules)"' \
  --customize-hook='test -n "$(find "$1"/lib/modules -name "virtiofs.ko*")"' \
  --customize-hook='chroot "$1" systemctl enable systemd-networkd' \
  --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-networkd-wait-online.service 2>/dev/null || true' \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
  --customize-hook='cp "$1"/boot/vmlinuz-* '"$OUT"'/vmlinuz && cp "$1"/boot/initrd.img-* '"$OUT"'/initrd.img' \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/boot/vmlinuz-* "$1"/boot/initrd.img-*' \
  bookworm "$ROOT" - < "${APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}"
du -sh "$ROOT"
mkfs.ext4 -q -F -L root -d "$ROOT" "$OUT/base.raw" 1G
rm -rf "$ROOT"
ls -la "$OUT"
