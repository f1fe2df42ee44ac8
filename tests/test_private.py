"""What a started instance creates is readable by the manager's user alone (issue 9,
class 7): overlays, EFI variables, console logs, named volumes, sockets and the pidfile
are 0600 in 0700 directories. Measured on real instances under a private systemd
(the tiny busybox guests of tests/test_lifecycle.py), not read off the unit files.
"""

from __future__ import annotations

import stat
from pathlib import Path

from tests.systemd_harness import PrivateSystemd
from tests.test_lifecycle import holosc, project, systemd, wait_ready  # noqa: F401

EFI = """\
  efi:
    <<: *tiny
    vm:
      memory_mb: 128
      uefi: true
      kernel: ./vmlinuz
      initrd: ./acpi.cpio.gz
      cmdline: console=ttyS0 quiet panic=-1
"""


def modes(root: Path, dirs: set[str]) -> dict[str, int]:
    """{path below root: permission bits} of every entry, symlinks not followed; the
    directories' paths are added to `dirs`."""
    result = {}
    for path in [root, *root.rglob("*")]:
        rel = str(path.relative_to(root.parent))
        result[rel] = stat.S_IMODE(path.lstat().st_mode)
        if stat.S_ISDIR(path.lstat().st_mode):
            dirs.add(rel)
    return result


def test_instance_files_are_private(systemd: PrivateSystemd, project: Path) -> None:  # noqa: F811
    text = (
        (project / "holos.yaml").read_text().replace("volumes:\n  data:", EFI + "volumes:\n  data:")
    )
    (project / "holos.yaml").write_text(text)
    # A state directory left by an older holosc (0755) is made private by the next start.
    old = systemd.state / "var-lib-holos" / "instances" / "life" / "db-0"
    old.mkdir(parents=True)
    old.chmod(0o755)
    up = holosc(systemd, project, "up")
    assert up.returncode == 0, up.stderr
    wait_ready(systemd, "db-0")
    state = systemd.state / "var-lib-holos"
    found: dict[str, int] = {}
    dirs: set[str] = set()
    for inst in ("db-0", "web-0", "efi-0"):
        found |= modes(state / "instances" / "life" / inst, dirs)
    found |= modes(state / "volumes" / "life", dirs)
    # The runtime directory is the private systemd's /run: read it inside its namespace.
    listing = systemd.run(
        ["find", "/run/holos/life", "-mindepth", "1", "-printf", "%P %m %y\n"]
    ).stdout.split("\n")
    for line in filter(None, listing):
        name, mode, kind = line.split()
        found[f"run/{name}"] = int(mode, 8)
        if kind == "d":
            dirs.add(f"run/{name}")
    print("MODES", sorted((k, oct(v)) for k, v in found.items()))
    expected = {
        "db-0/root.qcow2",
        "db-0/console.log",
        "efi-0/OVMF_VARS.fd",
        "life/data.qcow2",
        "run/db-0/qmp.sock",
        "run/db-0/serial.sock",
        "run/db-0/qemu.pid",
    }
    assert expected <= set(found), sorted(found)
    # QEMU's -daemonize sets umask 027 before it binds its sockets: they are 0750, which
    # lets no one else connect (that needs write permission), inside 0700 directories.
    # known_hosts holds the guest's public host key (holos-seed writes it 0644 on purpose).
    public = {".sock": 0o027, "known_hosts": 0o022}
    allowed = {
        path: next((m for end, m in public.items() if path.endswith(end)), 0o077) for path in found
    }
    loose = {path: oct(mode) for path, mode in found.items() if mode & allowed[path]}
    assert not loose, f"readable or writable by others: {loose}"
    assert all(found[d] == 0o700 for d in dirs), {d: oct(found[d]) for d in dirs}
    assert found["db-0"] == 0o700, "an existing state directory is made private"
    assert holosc(systemd, project, "down", "--volumes").returncode == 0
