"""Boot: time to healthy against the guest's own boot (issue #17, item 3). Prints numbers,
asserts nothing. Needs root and the Debian test guest of tests/e2e (built by the first
e2e run); boots real guests, so run it under the VM lock:

    .venv/bin/python bench/boot.py

1. Each service alone: from `systemctl start` of its first instance (the unit leaving
   "inactive") to its health gate passing, both on the host's clock, against the guest's
   own boot as the guest reports it: systemd-analyze's "Startup finished" (kernel and
   userspace up to the default target: the login prompt) and cloud-init's end (the
   uptime written to boot-finished). The health check is `true` with compose's default
   interval (30 s): healthy means a login over SSH worked.
2. The stack db -> api -> web (2 replicas): from db's start to the last gate passing,
   against the critical path, the chain's services measured alone in step 1, summed.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tests.conftest  # noqa: E402,F401  (imports tests.guestkernel without a cycle)
from tests.e2e.test_stack import GUEST as E2E_GUEST  # noqa: E402
from tests.guest.image import FILES, image_dir  # noqa: E402
from tests.systemd_harness import PrivateSystemd  # noqa: E402

GUEST = (
    E2E_GUEST
    + """\
  cloud_init: {user: holos}
  healthcheck:
    test: "true"
    timeout: 10s
    retries: 3
    start_period: 900s
"""
)
SERVICES = {  # the stack, in dependency order: name -> (replicas, depends_on)
    "db": (1, None),
    "api": (1, "db"),
    "web": (2, "api"),
}
STARTUP = re.compile(r"Startup finished in (.*?) = (.*)")
TARGET = re.compile(r"reached after (.*?) in userspace")


def seconds(text: str) -> float:
    """A systemd-analyze duration ("1min 23.095s", "812ms") in seconds."""
    units = {"h": 3600, "min": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(h|min|ms|s)\b", text))


def project_text(name: str, services: dict[str, tuple[int, str | None]]) -> str:
    lines = [GUEST + f"name: {name}", "services:"]
    for service, (replicas, after) in services.items():
        lines += [f"  {service}:", "    <<: *guest", f"    replicas: {replicas}"]
        if after:
            lines.append(f"    depends_on: [{after}]")
    return "\n".join(lines) + "\n"


class Run:
    def __init__(self, sd: PrivateSystemd, root: Path) -> None:
        self.sd = sd
        self.root = root

    def project(self, name: str, services: dict[str, tuple[int, str | None]]) -> Path:
        where = self.root / name
        where.mkdir()
        (where / "holos.yaml").write_text(project_text(name, services))
        (where / "guest").symlink_to(image_dir())
        return where

    def holosc(self, where: Path, *args: str) -> str:
        result = self.sd.holosc(*args, cwd=where, timeout=1800)
        if result.returncode != 0:
            raise SystemExit(f"holosc {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def monotonic(self, unit: str, prop: str) -> float:
        value = self.sd.systemctl("show", "-p", prop, "--value", unit).stdout.strip()
        return int(value) / 1e6

    def start_to_healthy(self, project: str, service: str, replicas: int) -> tuple[float, float]:
        """(first instance's start, gate passed), seconds on the host's monotonic clock."""
        starts = [
            self.monotonic(
                f"holos-{project}-{service}@{i}.service", "InactiveExitTimestampMonotonic"
            )
            for i in range(replicas)
        ]
        gate = self.monotonic(
            f"holos-{project}-{service}-healthy.service", "ActiveEnterTimestampMonotonic"
        )
        return min(starts), gate

    def guest_boot(self, where: Path, inst: str) -> tuple[float, float, float]:
        """(boot to login: kernel (and initrd) plus userspace up to the default target,
        systemd-analyze's startup total, cloud-init's end), seconds of guest uptime."""
        deadline = time.monotonic() + 600
        while True:
            out = self.sd.holosc(
                "exec", "-w", "600", inst, "--", "sh", "-c",
                "systemd-analyze; cut -d' ' -f1 /var/lib/cloud/instance/boot-finished",
                cwd=where, timeout=900,
            ).stdout  # fmt: skip
            found, target = STARTUP.search(out), TARGET.search(out)
            lines = out.strip().splitlines()
            if found and target and lines and re.fullmatch(r"[\d.]+", lines[-1]):
                before_userspace = sum(
                    seconds(value)
                    for value, kind in re.findall(r"([\d.hmins ]+?) \((\w+)\)", found[1])
                    if kind != "userspace"
                )
                login = before_userspace + seconds(target[1])
                return login, seconds(found[2]), float(lines[-1])
            if time.monotonic() > deadline:
                raise SystemExit(f"{inst}: no boot figures from the guest:\n{out}")
            time.sleep(2)  # the guest's boot is not finished yet


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root (a private systemd in its own namespaces)")
    if not all((image_dir() / f).is_file() for f in FILES):
        sys.exit(f"no test guest in {image_dir()}: run the e2e tests once to build it")
    with tempfile.TemporaryDirectory() as name:
        sd = PrivateSystemd(Path(name) / "systemd").start()
        try:
            measure(Run(sd, Path(name)))
        finally:
            sd.stop()


def measure(run: Run) -> None:
    print(
        "1. each service alone: start -> healthy (host clock) vs the guest's own boot "
        "(target < 1.2x)"
    )
    print(
        f"{'service':8} {'healthy s':>9} {'guest login s':>13} {'ratio':>6} "
        f"{'startup total s':>15} {'cloud-init end s':>16}"
    )
    alone: dict[str, float] = {}
    for service, (replicas, _) in SERVICES.items():
        project = f"alone-{service}"
        where = run.project(project, {service: (replicas, None)})
        run.holosc(where, "up")
        start, healthy = run.start_to_healthy(project, service, replicas)
        alone[service] = healthy - start
        boots = [run.guest_boot(where, f"{service}-{i}") for i in range(replicas)]
        guest = max(b[0] for b in boots)
        total = max(b[1] for b in boots)
        cloud = max(b[2] for b in boots)
        print(
            f"{service:8} {alone[service]:9.1f} {guest:13.1f} "
            f"{alone[service] / guest:6.2f} {total:15.1f} {cloud:16.1f}"
        )
        run.holosc(where, "down")
    where = run.project("stack", SERVICES)
    began = time.monotonic()
    run.holosc(where, "up")
    up_s = time.monotonic() - began
    first = run.start_to_healthy("stack", "db", 1)[0]
    last = max(run.start_to_healthy("stack", s, r)[1] for s, (r, _) in SERVICES.items())
    critical = sum(alone.values())  # the chain db -> api -> web is every service
    print("2. the stack db -> api -> web (2 replicas)")
    print(f"all healthy {last - first:.1f} s (holosc up returned after {up_s:.1f} s)")
    print(
        f"critical path (alone: {' + '.join(f'{alone[s]:.1f}' for s in SERVICES)}) {critical:.1f} s"
    )
    print(f"ratio {(last - first) / critical:.2f}   (target < 1.15)")
    run.holosc(where, "down")


if __name__ == "__main__":
    main()
