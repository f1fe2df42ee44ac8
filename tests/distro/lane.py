"""Run the test suite inside a booted Debian root: the Debian 13 lane of CI.

    python -m tests.distro.lane trixie [PYTEST ARGS...]

Builds (or reuses) the root of tests/distro/root.py, boots it with its own systemd as
PID 1 under systemd-nspawn, and runs pytest there as root with the root's own tools
(systemd, QEMU, shellcheck, cloud-init, ...), holosc as scripts/setup.sh installed it and
the checkout's code bound over it. The container has no network: the host's test cache
(the guest kernel and the Debian guest image, built by the host lane) is bound in
read-write. Exits with pytest's status; the container is stopped whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.distro.container import Container
from tests.distro.root import INSIDE, SYSTEMD_VERSION, ensure_root, source_binds
from tests.guestkernel import cache_dir

CACHE_INSIDE = "/var/cache/holosc-test"


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SYSTEMD_VERSION:
        print(f"usage: python -m tests.distro.lane {{{','.join(SYSTEMD_VERSION)}}} [PYTEST ARGS]")
        return 2
    suite, args = argv[0], argv[1:]
    started = time.monotonic()
    root = ensure_root(suite)
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    container = Container(
        root,
        f"holosc-lane-{suite}-{os.getpid()}",
        logs / f"holosc-lane-{suite}-{os.getpid()}.log",
        [*source_binds(), (cache, CACHE_INSIDE, False)],
    )
    try:
        container.start()
        ready = time.monotonic()
        print(f"{suite}: root ready and booted in {ready - started:.1f} s", flush=True)
        versions = container.enter(
            ["sh", "-c", "systemctl --version | head -n1; qemu-system-x86_64 --version | head -n1"]
        )
        print(versions.stdout, end="", flush=True)
        inner = [
            "systemd-run", "--wait", "--pipe", "--quiet", "--collect",
            f"--working-directory={INSIDE}", f"--setenv=HOLOSC_TEST_CACHE={CACHE_INSIDE}",
            "--setenv=PYTHONDONTWRITEBYTECODE=1", "--",
            f"{INSIDE}/.venv/bin/python", "-m", "pytest", "-p", "no:cacheprovider", *args,
        ]  # fmt: skip
        # Streamed, not captured: the output of a long run shows as it happens.
        result = subprocess.run(
            ["nsenter", "-t", str(container.leader), "-a", "--", *inner],
            stdin=subprocess.DEVNULL,
            timeout=3600,
            check=False,
        )
        print(f"{suite}: pytest exited {result.returncode} after {time.monotonic() - ready:.1f} s")
        return result.returncode
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"{suite}: {exc}", file=sys.stderr)
        return 1
    finally:
        container.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
