"""Snapshots of a running Debian guest (issue #26): what `holosc snapshot save` and
`restore` cost in time and disk, and the options measured against them. Prints numbers,
asserts nothing. Needs root and the Debian test guest of tests/e2e (built by the first
e2e run); boots one real guest, so run it under the VM lock:

    .venv/bin/python bench/snapshot.py

1. `holosc snapshot save` of the running guest (root disk and a named volume, one QMP
   transaction of internal snapshots), five times, while the guest writes: the command's
   wall time and the guest's own view of the pause (the longest gap of a 10 ms loop).
2. The alternative with RAM state: QMP `snapshot-save` (QEMU >= 6), the guest stopped
   while its memory is written; and its size.
3. What a snapshot keeps on disk: its exclusive size after the guest rewrites 64 MiB.
4. `holosc snapshot restore`: graceful stop, disks switched, start, health gate passed,
   with the parts from the journal; the dependent service's QEMU is untouched.
5. Offline: `holosc stop`, `snapshot save`, `snapshot restore` of the stopped guest.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tests.conftest  # noqa: E402,F401  (imports tests.guestkernel without a cycle)
from holosc.host import qmp  # noqa: E402
from tests.e2e.test_stack import BOOTED, GUEST  # noqa: E402
from tests.guest.image import FILES, image_dir  # noqa: E402
from tests.systemd_harness import PrivateSystemd  # noqa: E402

PROJECT = (
    GUEST
    + f"""name: snap
services:
  db:
    <<: *guest
    volumes: ["data:/data"]
    cloud_init: {{user: holos}}
    healthcheck:
      test: {BOOTED}
      interval: 2s
      timeout: 10s
      retries: 3
      start_period: 900s
  app:
    <<: *guest
    depends_on: [db]
    cloud_init: {{user: holos}}
volumes:
  data: {{size: 256M}}
"""
)
# The guest's view of a pause: a loop of 10 ms sleeps records the longest gap between
# two wake-ups on CLOCK_MONOTONIC.
GAPS = """cat > /tmp/gap.py <<'END'
import time
last = time.monotonic()
worst = 0.0
while True:
    time.sleep(0.01)
    now = time.monotonic()
    worst, last = max(worst, now - last), now
    with open("/tmp/gap", "w") as out:
        out.write(str(worst))
END
nohup python3 /tmp/gap.py >/dev/null 2>&1 &"""


class Bench:
    def __init__(self, sd: PrivateSystemd, where: Path) -> None:
        self.sd = sd
        self.where = where

    def holosc(self, *args: str) -> tuple[str, float]:
        began = time.monotonic()
        result = self.sd.holosc(*args, cwd=self.where, timeout=1800)
        took = time.monotonic() - began
        if result.returncode != 0:
            raise SystemExit(f"holosc {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout, took

    def exec(self, inst: str, command: str) -> str:
        return self.holosc("exec", "-w", "600", inst, "--", "sh", "-c", command)[0]

    def show(self, unit: str, prop: str) -> str:
        return self.sd.systemctl("show", "-p", prop, "--value", unit).stdout.strip()

    def qmp_socket(self) -> Path:
        return self.sd.state / "run-holos" / "snap" / "db-0" / "qmp.sock"

    def disk(self, name: str) -> Path:
        state = self.sd.state / "var-lib-holos"
        if name == "root":
            return state / "instances" / "snap" / "db-0" / "root.qcow2"
        return state / "volumes" / "snap" / f"{name}.qcow2"


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root (a private systemd in its own namespaces)")
    if not all((image_dir() / f).is_file() for f in FILES):
        sys.exit(f"no test guest in {image_dir()}: run the e2e tests once to build it")
    with tempfile.TemporaryDirectory() as name:
        sd = PrivateSystemd(Path(name) / "systemd").start()
        try:
            where = Path(name) / "project"
            where.mkdir()
            (where / "holos.yaml").write_text(PROJECT)
            (where / "guest").symlink_to(image_dir())
            measure(Bench(sd, where))
        finally:
            sd.stop()


def measure(b: Bench) -> None:
    _, up = b.holosc("up")
    print(f"up (db healthy, app started): {up:.1f} s")
    b.exec("db-0", "sudo chown holos /data && head -c 64M /dev/urandom > /data/blob && sync")
    b.exec("app-0", "true")
    app_pid = b.show("holos-snap-app@0.service", "MainPID")

    print("1. live save (root + data, one QMP transaction), guest writing meanwhile")
    b.exec("db-0", GAPS)
    b.exec("db-0", "nohup sh -c 'while :; do dd if=/dev/zero of=/data/w bs=1M count=8 "
           "conv=fsync 2>/dev/null; done' >/dev/null 2>&1 &")  # fmt: skip
    time.sleep(3)
    baseline = float(b.exec("db-0", "cat /tmp/gap"))
    saves = []
    for i in range(5):
        _, took = b.holosc("snapshot", "save", f"live{i}", "db")
        saves.append(took)
    gap = float(b.exec("db-0", "cat /tmp/gap"))
    print(f"   holosc snapshot save: {', '.join(f'{s:.2f}' for s in saves)} s")
    print(
        f"   guest's longest 10 ms-loop gap: {gap * 1000:.0f} ms (before: {baseline * 1000:.0f} ms)"
    )
    b.exec("db-0", "pkill -f '[w]hile :; do dd'; pkill -f '[d]d if=/dev/zero'; true")

    print("2. with RAM state (QMP snapshot-save, not what holosc does)")
    with qmp.session(b.qmp_socket(), timeout=600) as q:
        began = time.monotonic()
        q.execute(
            "snapshot-save",
            {"job-id": "ram", "tag": "ram", "vmstate": "root", "devices": ["root", "vol-data"]},
        )
        while True:
            jobs = q.execute("query-jobs")
            job = next(j for j in jobs if j["id"] == "ram")
            if job["status"] == "concluded":
                break
            time.sleep(0.05)
        ram = time.monotonic() - began
        q.execute("job-dismiss", {"id": "ram"})
        error = job.get("error")
    info = json.loads(
        b.sd.run(["qemu-img", "info", "-U", "--output=json", str(b.disk("root"))]).stdout
    )
    vmstate = next((s["vm-state-size"] for s in info.get("snapshots", []) if s["name"] == "ram"), 0)
    print(f"   snapshot-save: {ram:.2f} s, guest stopped throughout; RAM state {vmstate >> 20} MiB"
          + (f" (error: {error})" if error else ""))  # fmt: skip
    with qmp.session(b.qmp_socket(), timeout=600) as q:
        q.execute(
            "snapshot-delete", {"job-id": "del", "tag": "ram", "devices": ["root", "vol-data"]}
        )
        time.sleep(2)
        q.execute("job-dismiss", {"id": "del"})

    print("3. disk: what a snapshot keeps")
    b.exec("db-0", "echo before > /home/holos/probe && sync")
    b.holosc("snapshot", "save", "keep", "db")
    listed = json.loads(b.holosc("snapshot", "list", "db", "--json")[0])
    size = next(s["size"] for s in listed if s["name"] == "keep")
    print(f"   right after save: {size / 2**20:.1f} MiB")
    b.exec("db-0", "head -c 64M /dev/urandom > /data/blob && sync; rm /home/holos/probe; sync")
    listed = json.loads(b.holosc("snapshot", "list", "db", "--json")[0])
    size = next(s["size"] for s in listed if s["name"] == "keep")
    print(f"   after the guest rewrote 64 MiB: {size / 2**20:.1f} MiB")

    print("4. restore of the running guest (stop, switch, start, health gate)")
    _, took = b.holosc("snapshot", "restore", "keep", "db")
    journal = b.sd.run(
        ["journalctl", "-u", "holos-snap-db@0.service", "--no-pager", "-o", "cat"]
    ).stdout
    shut = re.findall(r"guest shut down after ([\d.]+) s", journal)
    start = int(b.show("holos-snap-db@0.service", "InactiveExitTimestampMonotonic"))
    healthy = int(b.show("holos-snap-db-healthy.service", "ActiveEnterTimestampMonotonic"))
    print(f"   holosc snapshot restore: {took:.1f} s (graceful stop {shut[-1] if shut else '?'} s, "
          f"start to healthy {(healthy - start) / 1e6:.1f} s)")  # fmt: skip
    probe = b.exec("db-0", "cat /home/holos/probe")
    same = b.show("holos-snap-app@0.service", "MainPID") == app_pid
    print(f"   file back: {probe.strip() == 'before'}; app's QEMU untouched: {same}")

    print("5. offline (stopped guest)")
    b.holosc("stop", "db")
    _, took = b.holosc("snapshot", "save", "off", "db")
    print(f"   holosc snapshot save: {took:.2f} s")
    _, took = b.holosc("snapshot", "restore", "off", "db")
    print(f"   holosc snapshot restore (switch, start, healthy): {took:.1f} s")
    print(b.holosc("snapshot", "list")[0], end="")
    b.holosc("down", "--volumes")


if __name__ == "__main__":
    main()
