"""A private systemd for tests: PID 1 of its own namespaces, seeing only the test's units.

Adapted from shared/testing/throwaway-systemd.sh, with its safety rules:
- SYSTEMD_UNIT_PATH lists only the test's unit directory (no trailing ':'), and
  generators are disabled, so the host's units (and tmpfiles cleanup) never load;
- nothing is ever `systemctl enable`d inside it (the host's /etc is visible);
- /run is a private tmpfs, and /etc/holos and /var/lib/holos are bind-mounted from the
  test's directory, so compiled projects never touch the host's copies;
- with net=True it gets a private network namespace (loopback only), so QEMU's
  network traffic and port forwards stay inside;
- it sees the cgroup hierarchies from inside its own cgroup namespace, so its units live
  below the test's cgroup, not beside the host's (or a booted container's) own units.
holosc runs inside the same namespaces through `nsenter` and asks this systemd for its unit
directory and roots, as it would ask the PID 1 of a host.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO, require_tool

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals) -> None:
    """Ask the kernel to send `sig` to the calling process when its parent (pytest) dies:
    a killed test run leaves nothing running. For a subprocess's preexec_fn."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


STUB_UNITS = (
    "exit.target", "systemd-exit.service", "shutdown.target", "final.target", "umount.target",
    "sockets.target", "timers.target", "paths.target", "slices.target", "network.target",
    "network-online.target", "network-pre.target", "multi-user.target",
    "systemd-journald.socket", "systemd-journald-dev-log.socket", "systemd-journald.service",
)  # fmt: skip

INNER = r"""
set -e
mount -t tmpfs -o mode=755 tmpfs /run
# The cgroup hierarchies mounted again from inside the new cgroup namespace, so that their
# root is this systemd's own cgroup: otherwise it takes the outer root for its own and puts
# init.scope and system.slice beside the outer manager's (in a booted container, into
# the container's own system.slice), and systemd 257 refuses such paths outside its
# namespace (journald exits: "Failed to acquire cgroup root path: Protocol driver not
# attached"). Over a fresh tmpfs: the kernel refuses to mount a filesystem again on its
# own mount point. With cgroup v1 (a tmpfs of hierarchies), the tmpfs gets its entries.
mapfile -t cgroup_mounts < <(awk \
  '$2 ~ "^/sys/fs/cgroup" && $3 ~ "^cgroup2?$" { print $3, $2, $4 }' /proc/self/mounts)
cgroup_entries=()
if [ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ]; then
  mapfile -t cgroup_entries < <(find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -printf '%y %f %l\n')
fi
mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
for entry in "${cgroup_entries[@]}"; do
  read -r kind name target <<< "$entry"
  case $kind in
    d) mkdir "/sys/fs/cgroup/$name" ;;
    l) ln -s "$target" "/sys/fs/cgroup/$name" ;;
  esac
done
for line in "${cgroup_mounts[@]}"; do
  read -r type dir opts <<< "$line"
  mount -t "$type" -o "$opts" "$type" "$dir"
done
mount --bind "$STATE/etc-holos" /etc/holos
mount --bind "$STATE/var-lib-holos" /var/lib/holos
mkdir -p /run/systemd/journald.conf.d
printf "[Journal]\nStorage=volatile\n" > /run/systemd/journald.conf.d/volatile.conf
ip link set lo up 2>/dev/null || true
# Units name the runtime helpers by bare command name (systemd finds them in
# /usr/local/bin); inside this namespace /usr/local/bin holds only the helpers of the
# checkout under test (also those the host has not linked yet).
mkdir -p "$STATE/local-bin"
for helper in "$HELPERS_BIN"/holos-*; do ln -s "$helper" "$STATE/local-bin/"; done
mount --bind "$STATE/local-bin" /usr/local/bin
hostname holosc-test
export container=holosc-test
export SYSTEMD_UNIT_PATH="$UNITDIR"
export SYSTEMD_GENERATOR_PATH="$STATE/empty" SYSTEMD_ENVIRONMENT_GENERATOR_PATH="$STATE/empty"
exec /lib/systemd/systemd --system --unit=holosc-boot.target --log-target=journal-or-kmsg \
  --show-status=no
"""


class PrivateSystemd:
    def __init__(self, root: Path, *, net: bool = True) -> None:
        self.root = root
        self.units = root / "units"
        self.state = root / "sd"
        self.net = net
        self.pid = 0
        self.unshare: subprocess.Popen[bytes] | None = None
        self.cgroups: list[Path] = []

    def start(self) -> PrivateSystemd:
        for tool in ("unshare", "nsenter"):
            require_tool(tool)
        self.units.mkdir(parents=True, exist_ok=True)
        for sub in ("empty", "etc-holos", "var-lib-holos"):
            (self.state / sub).mkdir(parents=True)
        for host_dir in ("/etc/holos", "/var/lib/holos"):  # mount points only
            Path(host_dir).mkdir(parents=True, exist_ok=True)
        for unit in STUB_UNITS:
            (self.units / unit).symlink_to(f"/lib/systemd/system/{unit}")
        (self.units / "sysinit.target").write_text(
            "[Unit]\nDescription=stub sysinit\n"
            "Wants=systemd-journald.socket systemd-journald-dev-log.socket\n"
        )
        (self.units / "basic.target").write_text(
            "[Unit]\nDescription=stub basic\nRequires=sysinit.target\nAfter=sysinit.target\n"
        )
        (self.units / "holosc-boot.target").write_text(
            "[Unit]\nDescription=holosc test boot\nRequires=sysinit.target\nAfter=sysinit.target\n"
        )
        self._enter_cgroup()
        argv = [
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount",
            "--mount-proc",
            "--uts",
            "--ipc",
            "--cgroup",
            *(["--net"] if self.net else []),
            "--propagation",
            "private",
            "/bin/bash",
            "-c",
            INNER,
        ]
        env = dict(
            os.environ,
            UNITDIR=str(self.units),
            STATE=str(self.state),
            HELPERS_BIN=str(Path(sys.executable).parent),
        )
        log = (self.state / "console.log").open("wb")
        self.unshare = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=self._join_cgroup,
        )
        deadline = time.monotonic() + 30
        while not self.pid:
            found = subprocess.run(
                ["pgrep", "-P", str(self.unshare.pid), "-x", "systemd"],
                capture_output=True,
                text=True,
            ).stdout.split()
            self.pid = int(found[0]) if found else 0
            if time.monotonic() > deadline or self.unshare.poll() is not None:
                raise RuntimeError(f"systemd did not start: {self.console()}")
            time.sleep(0.05)
        while True:
            state = self.systemctl("is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"systemd not ready ({state}): {self.console()}")
            time.sleep(0.1)

    def _enter_cgroup(self) -> None:
        name = f"holosc-test-{os.getpid()}-{id(self)}"
        for hierarchy in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
            if Path(hierarchy, "cgroup.procs").is_file():
                path = Path(hierarchy, name)
                try:
                    path.mkdir(exist_ok=True)
                    self.cgroups.append(path)
                except OSError:
                    pass

    def _join_cgroup(self) -> None:
        for path in self.cgroups:
            with contextlib.suppress(OSError):
                (path / "cgroup.procs").write_text(str(os.getpid()))
        # If pytest dies (a timeout, Ctrl-C twice), unshare dies with it, and --kill-child
        # takes the private systemd and every guest with it: nothing is left running.
        die_with_parent(signal.SIGKILL)

    def console(self) -> str:
        return (self.state / "console.log").read_text(errors="replace")[-2000:]

    def nsenter(self) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-p", *(["-n"] if self.net else [])]

    def run(
        self,
        argv: list[str],
        *,
        check: bool = True,
        timeout: float = 600,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        # nsenter -m enters the namespace's root and cwd; --wd keeps ours.
        wd = [f"--wd={cwd}"] if cwd else []
        result = subprocess.run(
            [*self.nsenter(), *wd, "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{argv} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", *args], check=check, timeout=120)

    def cgroup_memory(self, unit: str) -> int:
        """memory.current (cgroup v2) or memory.usage_in_bytes (v1) of a unit's cgroup,
        read from the cgroup filesystem inside this systemd's namespaces; where its subtree
        has no memory controller (a booted Debian 13 root's delegation), its main
        process's resident set, as `holosc stats` reports it then (docs/units.md)."""
        group = self.systemctl("show", "-p", "ControlGroup", "--value", unit).stdout.strip()
        pid = self.systemctl("show", "-p", "MainPID", "--value", unit).stdout.strip()
        script = (
            'cat "/sys/fs/cgroup$1/memory.current" 2>/dev/null || '
            'cat "/sys/fs/cgroup/memory$1/memory.usage_in_bytes" 2>/dev/null || '
            "echo $(( $(sed -n 's/^VmRSS:[[:space:]]*\\([0-9]*\\) kB$/\\1/p' /proc/$2/status)"
            " * 1024 ))"
        )
        return int(self.run(["sh", "-c", script, "sh", group, pid]).stdout)

    def holosc(
        self, *args: str, cwd: Path, check: bool = False, timeout: float = 900, **env: str
    ) -> subprocess.CompletedProcess[str]:
        environ = dict(
            os.environ,
            HOLOS_ACCEL="tcg",
            PYTHONPATH=str(REPO),
            **env,
        )
        return self.run(
            [sys.executable, "-m", "holosc", *args],
            check=check,
            env=environ,
            cwd=cwd,
            timeout=timeout,
        )

    def stop(self) -> None:
        if self.pid:
            subprocess.run(
                [*self.nsenter(), "systemctl", "exit"], capture_output=True, timeout=30, check=False
            )
            deadline = time.monotonic() + 30
            while Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if Path(f"/proc/{self.pid}").exists():
                os.kill(self.pid, 9)  # kills the whole pid namespace
        if self.unshare is not None:
            try:
                self.unshare.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.unshare.kill()
        for path in reversed(self.cgroups):
            for sub in sorted(path.rglob("*"), reverse=True):
                if sub.is_dir():
                    _rmdir(sub)
            _rmdir(path)


def _rmdir(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()
