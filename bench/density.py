"""Density (issue 27): host memory per guest, KSM, holosc's overhead per instance, and
`up`/`ps`/`down` of 10, 25 and 50 tiny guests in one project. Prints tables, asserts
nothing; needs root (a private systemd in its own namespaces, as the tests use), and the
guests run under TCG. Run it through /work/vmlock-style slot locking on a shared machine:
the load average is printed with each part.

Usage: python bench/density.py [PART ...] [--idle S] [--ksm-guests N] [--counts 10,25,50]
PART: fpr, ksm, scale (default: all three).

- fpr: two Debian test guests (tests/guest) of memory_mb 1024, one with free page
  reporting (the default) and one without, side by side: host memory after boot, right
  after a workload that touches and frees 75 % of memory_mb, and --idle seconds later.
- ksm: N identical idle Debian guests with `vm.ksm: true`, before and after the host's
  ksmd merged them (its settings are changed for the run and restored after).
- scale: projects of N busybox guests (tests/guestkernel's tiny guests, memory_mb 128):
  wall time of up, of all guests booted, of ps and of down; peak host memory; and what
  runs beside QEMU (processes, their memory, units, the manager's own growth).

Host memory is read from /proc of every process in the private systemd's PID namespace:
PSS (proportional: shared libraries and KSM-merged pages split between their users) and
RSS. Under TCG QEMU's resident memory includes its translated-code cache (an executable
anonymous mapping that KVM does not have); it is shown separately as "tcg".
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tests.conftest  # noqa: E402,F401  (imports tests.guestkernel without a cycle)
from bench.lifecycle import tiny_project  # noqa: E402
from tests.guest.image import FILES, image_dir  # noqa: E402
from tests.systemd_harness import PrivateSystemd  # noqa: E402

MiB = 1 << 20
BOOTED = "test -f /var/lib/cloud/instance/boot-finished"
DEBIAN_VM = """      memory_mb: 1024
      kernel: ./guest/vmlinuz
      initrd: ./guest/initrd.img
      cmdline: root=/dev/vda rw console=ttyS0 quiet"""
DEBIAN = f"""name: NAME
x-guest: &guest
  image: ./guest/base.raw
  cloud_init: {{user: holos}}
  healthcheck:
    test: {BOOTED}
    interval: 2s
    timeout: 10s
    retries: 3
    start_period: 900s
services:
SERVICES"""
FPR_SERVICES = f"""  fpr:
    <<: *guest
    vm:
{DEBIAN_VM}
  nofpr:
    <<: *guest
    vm:
{DEBIAN_VM}
      free_page_reporting: false
"""
KSM_SERVICES = f"""  twin:
    <<: *guest
    replicas: REPLICAS
    vm:
{DEBIAN_VM}
      ksm: true
"""
TOUCH = "python3 -c 'b = bytearray(b\"\\x01\") * ({} << 20); print(len(b) >> 20)'"
KSM = Path("/sys/kernel/mm/ksm")
READY = re.compile(r"^ready\r?$", re.M)  # bench/lifecycle's tiny init prints it when up


@dataclasses.dataclass
class Proc:
    pid: int
    comm: str
    unit: str  # the systemd unit (or scope) of its cgroup
    rss: int
    pss: int
    tcg: int  # RSS of executable anonymous mappings (QEMU's TCG code cache)
    hwm: int  # peak RSS since the last reset_peak


def namespace_procs(sd: PrivateSystemd, detail: bool = False) -> list[Proc]:
    """Every process of the private systemd's PID namespace, read from the host's /proc.
    With `detail`, smaps is read for the TCG cache (slower)."""
    ns = os.readlink(f"/proc/{sd.pid}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != ns:
                continue
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            cgroup = Path(f"/proc/{entry}/cgroup").read_text()
            rollup = Path(f"/proc/{entry}/smaps_rollup").read_text()
            tcg = _tcg_cache(Path(f"/proc/{entry}/smaps").read_text()) if detail else 0
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:  # gone meanwhile
            continue
        units = re.findall(r"/([^/\n]+\.(?:service|scope))$", cgroup, re.M)
        fields = dict(re.findall(r"^(\w+):\s+(\d+) kB", rollup, re.M))
        rss, pss = int(fields.get("Rss", 0)) * 1024, int(fields.get("Pss", 0)) * 1024
        hwm = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        unit = units[0] if units else "-"
        found.append(Proc(int(entry), comm, unit, rss, pss, tcg, int(hwm[1]) * 1024 if hwm else 0))
    return found


def _tcg_cache(smaps: str) -> int:
    total = 0
    for block in re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", smaps):
        head = block.split("\n", 1)[0].split()
        if len(head) == 5 and "x" in head[1]:  # anonymous (no path) and executable
            found = re.search(r"^Rss:\s+(\d+) kB", block, re.M)
            total += int(found[1]) * 1024 if found else 0
    return total


class Sampler:
    """Peak of the summed PSS of the namespace's processes, sampled every second."""

    def __init__(self, sd: PrivateSystemd) -> None:
        self.sd, self.peak, self._stop = sd, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(p.pss for p in namespace_procs(self.sd)))
            self._stop.wait(1.0)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def load() -> str:
    return "load " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def mib(value: float) -> str:
    return f"{value / MiB:7.1f}"


class Bench:
    def __init__(self, sd: PrivateSystemd, tmp: Path) -> None:
        self.sd, self.tmp = sd, tmp

    def holosc(self, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.sd.holosc(*args, cwd=project, timeout=3600)
        if result.returncode != 0:
            raise SystemExit(f"holosc {' '.join(args)} failed:\n{result.stderr}")
        return result

    def timed(self, project: Path, *args: str) -> float:
        began = time.monotonic()
        self.holosc(project, *args)
        return time.monotonic() - began

    def debian_project(self, name: str, services: str) -> Path:
        guest = image_dir()
        if not all((guest / f).is_file() for f in FILES):
            sys.exit(f"no Debian test guest in {guest}: run tests/e2e once to build it")
        project = self.tmp / name
        project.mkdir()
        (project / "guest").symlink_to(guest)
        text = DEBIAN.replace("NAME", name).replace("SERVICES", services)
        (project / "holos.yaml").write_text(text)
        return project

    def qemu(self, unit: str) -> Proc:
        for proc in namespace_procs(self.sd, detail=True):
            if proc.unit == unit and proc.comm.startswith("qemu"):
                return proc
        raise SystemExit(f"no QEMU in {unit}")


def fpr(bench: Bench, idle: float) -> None:
    print(f"\n== free page reporting: Debian guest, memory_mb 1024 ({load()})", flush=True)
    project = bench.debian_project("fpr", FPR_SERVICES)
    took = bench.timed(project, "up")
    print(f"up (both booted, healthy): {took:.0f} s", flush=True)
    units = {"fpr": "holos-fpr-fpr@0.service", "nofpr": "holos-fpr-nofpr@0.service"}
    rows: dict[str, list[Proc]] = {svc: [bench.qemu(u)] for svc, u in units.items()}
    touch = 768
    for svc in units:  # one after the other: each measured right after its own workload
        Path(f"/proc/{rows[svc][0].pid}/clear_refs").write_text("5\n")  # VmHWM := VmRSS
        out = bench.holosc(
            project, "exec", "-w", "600", f"{svc}-0", "--", "sh", "-c", TOUCH.format(touch)
        )
        assert out.stdout.strip() == str(touch), out.stdout
        rows[svc].append(bench.qemu(units[svc]))
        print(f"{svc}: peak RSS during the workload {rows[svc][-1].hwm / MiB:.0f} MiB")
    print(f"touched and freed {touch} MiB in each; idle {idle:.0f} s", flush=True)
    time.sleep(idle)
    for svc in units:
        rows[svc].append(bench.qemu(units[svc]))
    print(
        f"{'QEMU of':10} {'boot':>16} {'after workload':>16} {f'idle {idle:.0f} s later':>16}"
        f" {'x memory_mb':>11}   (RSS MiB, of it TCG cache; idle PSS)"
    )
    for svc, procs in rows.items():
        cells = " ".join(f"{p.rss / MiB:8.0f} ({p.tcg / MiB:4.0f})" for p in procs)
        last = procs[-1]
        print(
            f"{svc:10} {cells} {last.rss / MiB / 1024:11.2f}   idle PSS {mib(last.pss)};"
            f" without TCG cache {(last.rss - last.tcg) / MiB / 1024:.2f}x"
        )
    bench.holosc(project, "down")
    print(f"({load()})")


def ksm(bench: Bench, guests: int, settle: float) -> None:
    print(f"\n== KSM: {guests} identical idle Debian guests, vm.ksm: true ({load()})", flush=True)
    project = bench.debian_project("ksm", KSM_SERVICES.replace("REPLICAS", str(guests)))
    took = bench.timed(project, "up")
    print(f"up ({guests} booted, healthy): {took:.0f} s; idle 30 s", flush=True)
    time.sleep(30)
    units = [f"holos-ksm-twin@{i}.service" for i in range(guests)]
    before = [bench.qemu(u) for u in units]
    saved = {
        name: (KSM / name).read_text().strip()
        for name in ("run", "pages_to_scan", "sleep_millisecs")
    }
    try:
        (KSM / "pages_to_scan").write_text("4000\n")
        (KSM / "sleep_millisecs").write_text("20\n")
        (KSM / "run").write_text("1\n")
        merged, began, last = 0, time.monotonic(), -1
        while time.monotonic() - began < settle:
            time.sleep(15)
            merged = sum(_ksm_pages(p.pid) for p in before)
            print(
                f"  {time.monotonic() - began:4.0f} s: "
                f"{merged * 4 / 1024:.0f} MiB of the guests merged",
                flush=True,
            )
            if merged == last:
                break
            last = merged
        after = [bench.qemu(u) for u in units]
        scans = (KSM / "full_scans").read_text().strip()
    finally:
        if saved["run"] == "0":
            (KSM / "run").write_text("2\n")  # unmerge what this run merged
        for name, value in saved.items():
            (KSM / name).write_text(value + "\n")
    print(f"{'':22} {'before':>9} {'merged':>9}   (ksmd full scans: {scans})")
    print(f"{'sum of QEMU RSS MiB':22} {mib(rss(before)):>9} {mib(rss(after)):>9}")
    print(f"{'sum of QEMU PSS MiB':22} {mib(pss(before)):>9} {mib(pss(after)):>9}")
    print(f"{'PSS per guest MiB':22} {mib(pss(before) / guests):>9} {mib(pss(after) / guests):>9}")
    print(
        f"merging pages: {merged * 4 / 1024:.0f} MiB over {guests} guests "
        f"({merged * 4 / 1024 / guests:.0f} MiB each)"
    )
    bench.holosc(project, "down")
    print(f"({load()})")


def rss(procs: list[Proc]) -> int:
    return sum(p.rss for p in procs)


def pss(procs: list[Proc]) -> int:
    return sum(p.pss for p in procs)


def _ksm_pages(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/ksm_merging_pages").read_text())
    except (OSError, ValueError):
        return 0


TINY_SCALE = """\
name: NAME
x-tiny: &tiny
  image: ./disk.qcow2
  vm:
    memory_mb: 128
    kernel: ./vmlinuz
    initrd: ./acpi.cpio.gz
    cmdline: console=ttyS0 quiet panic=-1
services:
  db:
    <<: *tiny
  web:
    <<: *tiny
    replicas: REPLICAS
    depends_on: [db]
"""


def scale(bench: Bench, counts: list[int]) -> None:
    print(f"\n== scale: N busybox guests (memory_mb 128) in one project ({load()})", flush=True)
    rows = []
    overhead = []
    for n in counts:
        name = f"s{n}"
        project = tiny_project(bench.tmp / name, name)
        text = TINY_SCALE.replace("NAME", name).replace("REPLICAS", str(n - 1))
        (project / "holos.yaml").write_text(text)
        manager_before = _manager(bench.sd)
        with Sampler(bench.sd) as sampler:
            up = bench.timed(project, "up")
            booted = up + _wait_booted(bench.sd, name, n)
            idle = namespace_procs(bench.sd)
            manager_after = _manager(bench.sd)
            units = bench.sd.systemctl(
                "list-units", "--all", "--plain", "--no-legend", f"holos-{name}*"
            )
            ps = bench.timed(project, "ps")
            down = bench.timed(project, "down")
        rows.append((n, up, booted, ps, down, sampler.peak))
        beside = [
            p for p in idle if not p.comm.startswith("qemu") and p.unit.startswith(f"holos-{name}")
        ]
        qemus = [p for p in idle if p.comm.startswith("qemu")]
        overhead.append(
            (n, beside, qemus, len(units.stdout.splitlines()), manager_after - manager_before)
        )
        print(
            f"  N={n}: up {up:.1f} s, booted {booted:.1f} s, ps {ps:.1f} s, "
            f"down {down:.1f} s ({load()})",
            flush=True,
        )
    base = rows[0]
    print(
        f"{'N':>3} {'up s':>6} {'booted s':>9} {'ps s':>6} {'down s':>7} {'peak MiB':>9} "
        f"{'MiB/inst':>8} {'up xN0':>6} {'down xN0':>8}"
    )
    for n, up, booted, ps, down, peak in rows:
        print(
            f"{n:3d} {up:6.1f} {booted:9.1f} {ps:6.2f} {down:7.1f} {peak / MiB:9.0f} "
            f"{peak / MiB / n:8.1f} {up / base[1]:6.2f} {down / base[4]:8.2f}"
        )
    print("\nbeside QEMU while idle (processes of the project's units that are not QEMU):")
    print(
        f"{'N':>3} {'procs':>5} {'their PSS MiB':>13} {'units':>5} {'units/inst':>10} "
        f"{'manager +MiB':>12} {'MiB/inst':>8}  {'QEMU PSS MiB/inst':>17}"
    )
    for n, beside, qemus, units_n, grown in overhead:
        own = sum(p.pss for p in beside)
        per = (own + grown) / n
        names = ",".join(sorted({p.comm for p in beside})) or "-"
        print(
            f"{n:3d} {len(beside):5d} {own / MiB:13.1f} {units_n:5d} {units_n / n:10.2f} "
            f"{grown / MiB:12.1f} {per / MiB:8.2f}  {sum(p.pss for p in qemus) / MiB / n:17.1f}"
            f"   ({names})"
        )


def _manager(sd: PrivateSystemd) -> int:
    """The private systemd's own (PID 1's) PSS: the units it keeps loaded cost memory."""
    return next((p.pss for p in namespace_procs(sd) if p.pid == sd.pid), 0)


def _wait_booted(sd: PrivateSystemd, project: str, n: int, timeout: float = 1800) -> float:
    """Seconds until every guest's console shows the tiny init's mark."""
    began = time.monotonic()
    logs = [
        sd.state / "var-lib-holos" / "instances" / project / inst / "console.log"
        for inst in ["db-0", *(f"web-{i}" for i in range(n - 1))]
    ]
    while True:
        if all(p.exists() and READY.search(p.read_text(errors="replace")) for p in logs):
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise SystemExit(f"{project}: not all {n} guests booted in {timeout:.0f} s")
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="*", default=["fpr", "ksm", "scale"])
    parser.add_argument("--idle", type=float, default=60)
    parser.add_argument("--ksm-guests", type=int, default=3)
    parser.add_argument("--ksm-settle", type=float, default=300)
    parser.add_argument("--counts", default="10,25,50")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (a private systemd in its own namespaces)")
    parts: dict[str, Callable[[Bench], None]] = {
        "fpr": lambda b: fpr(b, args.idle),
        "ksm": lambda b: ksm(b, args.ksm_guests, args.ksm_settle),
        "scale": lambda b: scale(b, [int(n) for n in args.counts.split(",")]),
    }
    print(f"density bench: {os.cpu_count()} cores, {load()}; guests under TCG", flush=True)
    for part in args.parts:
        with tempfile.TemporaryDirectory() as name:
            sd = PrivateSystemd(Path(name) / "systemd").start()
            try:
                parts[part](Bench(sd, Path(name)))
            finally:
                sd.stop()


if __name__ == "__main__":
    main()
