"""A Debian root booted by its own systemd under systemd-nspawn, and commands run inside.

The measured recipe of shared/testing/README.md for these machines (no systemd PID 1 on
the host, mixed cgroup v1/v2): `--register=no --keep-unit`, a pure cgroup v2 inside
(SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1), nspawn started from a cgroup of its own that is
removed afterwards, and a private network namespace (loopback only). `--volatile=overlay`
keeps the cached root untouched: every write of a run lands in a tmpfs overlay, gone
with the container. Nothing inside can see the host's unit directories.

Commands run through `nsenter` into the container, wrapped in `systemd-run --wait --pipe`
of the container's own manager (commands that talk to logind fail from a bare nsenter);
`as_user` runs them as the unprivileged test user with its user manager's bus.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.conftest import require_tool
from tests.systemd_harness import die_with_parent

USER, UID = "holos", 1500  # made by build-root.sh: no sudo, not in the kvm group


class Container:
    def __init__(
        self, root: Path, name: str, log: Path, binds: Sequence[tuple[Path, str, bool]] = ()
    ) -> None:
        self.root = root
        self.name = name
        self.log = log
        self.binds = binds  # (host path, path inside, read-only)
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0
        self.cgroup = Path("/sys/fs/cgroup/unified") / name
        if not Path("/sys/fs/cgroup/unified/cgroup.procs").is_file():
            self.cgroup = Path("/sys/fs/cgroup") / name

    def start(self, timeout: float = 120) -> Container:
        nspawn = require_tool("systemd-nspawn")  # apt-get install systemd-container
        argv = [
            nspawn, "--quiet", "--boot", f"--directory={self.root}", "--volatile=overlay",
            "--register=no", "--keep-unit", "--private-network", f"--machine={self.name}",
            *(f"--bind{'-ro' if ro else ''}={host}:{inner}" for host, inner, ro in self.binds),
        ]  # fmt: skip
        self.cgroup.mkdir()
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        with self.log.open("wb") as out:
            self.nspawn = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._in_cgroup_dying_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not self.leader:
            self._check_alive()
            self.leader = self._find_leader()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no systemd in the container: {self.console()}")
            time.sleep(0.1)
        while True:
            self._check_alive()
            state = self.enter(["systemctl", "is-system-running"], check=False).stdout.strip()
            if state in ("running", "degraded"):
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: not booted ({state}): {self.console()}")
            time.sleep(0.2)

    def _in_cgroup_dying_with_parent(self) -> None:
        (self.cgroup / "cgroup.procs").write_text(str(os.getpid()))
        # If pytest dies, nspawn gets SIGTERM, its clean-shutdown signal: the container
        # halts instead of running on as an orphan.
        die_with_parent(signal.SIGTERM)

    def _find_leader(self) -> int:
        """The container's PID 1: the process whose comm is systemd under nspawn."""
        assert self.nspawn is not None
        for line in (self.cgroup / "cgroup.procs").read_text().split():
            pid = int(line)
            with contextlib.suppress(OSError):
                if pid != self.nspawn.pid and Path(f"/proc/{pid}/comm").read_text() == "systemd\n":
                    return pid
        for path in self.cgroup.rglob("init.scope/cgroup.procs"):
            pids = path.read_text().split()
            if pids:
                return int(pids[0])
        return 0

    def _check_alive(self) -> None:
        assert self.nspawn is not None
        if self.nspawn.poll() is not None:
            raise RuntimeError(f"{self.name}: systemd-nspawn exited: {self.console()}")

    def console(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def enter(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run argv in every namespace of the container, as root, outside any unit."""
        result = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.name}: {list(argv)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def run(
        self,
        argv: Sequence[str],
        *,
        user: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        check: bool = False,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv as a transient service of the container's system manager: as root, or
        (user=True) as the unprivileged test user, with its user manager's bus."""
        props = ["--wait", "--pipe", "--quiet", "--collect", "--service-type=exec"]
        environ = dict(env or {})
        if user:
            props += [f"--uid={USER}", f"--gid={USER}"]
            environ = {
                "HOME": f"/home/{USER}",
                "USER": USER,
                "XDG_RUNTIME_DIR": f"/run/user/{UID}",
                "DBUS_SESSION_BUS_ADDRESS": f"unix:path=/run/user/{UID}/bus",
                **environ,
            }
        if cwd:
            props.append(f"--working-directory={cwd}")
        props += [f"--setenv={k}={v}" for k, v in sorted(environ.items())]
        return self.enter(["systemd-run", *props, "--", *argv], check=check, timeout=timeout)

    def stop(self) -> None:
        """SIGTERM to the nspawn started here (a clean shutdown), then its cgroup goes."""
        if self.nspawn is not None and self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(timeout=60)
            except subprocess.TimeoutExpired:
                # The container's PID 1 has a session of its own: killing it ends every
                # process of its PID namespace.
                for pid, kill in ((self.leader, os.kill), (self.nspawn.pid, os.killpg)):
                    with contextlib.suppress(ProcessLookupError):
                        if pid:
                            kill(pid, signal.SIGKILL)
                self.nspawn.wait(timeout=30)
        if self.cgroup.exists():
            for sub in sorted(self.cgroup.rglob("*"), reverse=True):
                if sub.is_dir():
                    with contextlib.suppress(OSError):
                        sub.rmdir()
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()
        with contextlib.suppress(OSError):
            Path("/run/systemd/nspawn/propagate", self.name).rmdir()
