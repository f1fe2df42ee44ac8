"""Dockerfile builds (issue 15): prints numbers, asserts nothing. Needs root and the Debian
test guest of tests/e2e (built by the first e2e run); boots real guests under TCG, so run
it under the VM lock:

    .venv/bin/python bench/build.py [RUNS]

The Dockerfile does what provisioning typically costs without a network here: byte-
compiling the guest's Python library (CPU, many small files) and writing 64 MiB (disk).

1. `holosc bake`: a cold build (one builder boot), a cache hit (no VM), and a rebuild
   after an edit of the last RUN (one layer: one builder boot on the cached layers).
2. A replica's start -> healthy (its unit leaving "inactive" to its health gate passing),
   booting the built image, against the same steps run at its first boot (the path before
   builds: the RUNs as cloud_init runcmd, the COPY as write_files). The health check is
   the same for both: the steps' result is there. The ratio is the headline.
Each figure is the median of RUNS runs (default 1).
"""

from __future__ import annotations

import os
import statistics
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

STEPS = [
    "python3 -m compileall -q /usr/lib/python3.11",
    "dd if=/dev/urandom of=/opt/app/data bs=1M count=64 status=none",
]
APP = "print('hello')\n"
DOCKERFILE = (  # BENCH_RUN makes each run's layers new: its first build is cold
    "FROM debian:12\nENV BENCH_RUN={run} APP=/opt/app\nWORKDIR /opt/app\nCOPY app.py ./app.py\n"
    + "".join(f"RUN {step}\n" for step in STEPS)
    + "RUN echo {last} > /opt/app/last\n"
)
HEALTH = "test -f /opt/app/data -a -f /opt/app/last"
GUEST = (
    E2E_GUEST
    + f"""\
  cloud_init: {{user: holos}}
  healthcheck:
    test: {HEALTH}
    interval: 2s
    timeout: 10s
    retries: 3
    start_period: 1800s
"""
)
BUILT = GUEST + "name: {name}\nservices:\n  app:\n    <<: *guest\n    dockerfile: ./Dockerfile\n"
# The same steps at first boot: what a dockerfile: service compiled to before builds.
FIRST_BOOT = (
    GUEST
    + "name: {name}\nservices:\n  app:\n    <<: *guest\n    cloud_init:\n      user: holos\n"
    + "      write_files:\n        - {path: /opt/app/app.py, content: \"print('hello')\\n\"}\n"
    + "      runcmd:\n"
    + "".join(f"        - {step}\n" for step in STEPS)
    + "        - echo 1 > /opt/app/last\n"
)


class Run:
    def __init__(self, sd: PrivateSystemd, root: Path) -> None:
        self.sd = sd
        self.root = root

    def project(self, name: str, text: str) -> Path:
        where = self.root / name
        where.mkdir()
        (where / "holos.yaml").write_text(text.replace("{name}", name))
        (where / "Dockerfile").write_text(self.dockerfile(name, 1))
        (where / "app.py").write_text(APP)
        (where / "guest").symlink_to(image_dir())
        return where

    @staticmethod
    def dockerfile(name: str, last: int) -> str:
        return DOCKERFILE.replace("{run}", name).replace("{last}", str(last))

    def holosc(self, where: Path, *args: str) -> tuple[float, str]:
        began = time.monotonic()
        result = self.sd.holosc(*args, cwd=where, timeout=3600)
        if result.returncode != 0:
            raise SystemExit(f"holosc {' '.join(args)} failed:\n{result.stderr}")
        return time.monotonic() - began, result.stderr

    def monotonic(self, unit: str, prop: str) -> float:
        value = self.sd.systemctl("show", "-p", prop, "--value", unit).stdout.strip()
        return int(value) / 1e6

    def start_to_healthy(self, project: str) -> float:
        start = self.monotonic(f"holos-{project}-app@0.service", "InactiveExitTimestampMonotonic")
        gate = self.monotonic(
            f"holos-{project}-app-healthy.service", "ActiveEnterTimestampMonotonic"
        )
        return gate - start


def measure(run: Run, index: int) -> dict[str, float]:
    figures = {}
    where = run.project(f"built{index}", BUILT)
    figures["cold build s"], log = run.holosc(where, "bake")
    assert log.count("starting the builder VM") == 1, log
    figures["cache hit s"], log = run.holosc(where, "bake")
    assert "no builder started" in log, log
    (where / "Dockerfile").write_text(run.dockerfile(f"built{index}", 2))
    figures["one-layer rebuild s"], log = run.holosc(where, "bake")
    assert log.count(": cached") == len(STEPS) + 1, log
    run.holosc(where, "up")
    figures["built image: start -> healthy s"] = run.start_to_healthy(f"built{index}")
    run.holosc(where, "down")
    where = run.project(f"firstboot{index}", FIRST_BOOT)
    run.holosc(where, "up")
    figures["first-boot steps: start -> healthy s"] = run.start_to_healthy(f"firstboot{index}")
    run.holosc(where, "down")
    return figures


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    if os.geteuid() != 0:
        sys.exit("needs root (a private systemd in its own namespaces)")
    if not all((image_dir() / f).is_file() for f in FILES):
        sys.exit(f"no test guest in {image_dir()}: run the e2e tests once to build it")
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as name:
        sd = PrivateSystemd(Path(name) / "systemd").start()
        try:
            for index in range(runs):
                results.append(measure(Run(sd, Path(name)), index))
        finally:
            sd.stop()
    print(f"Dockerfile: {len(STEPS) + 2} steps ({'; '.join(STEPS)}), TCG, median of {runs}")
    for key in results[0]:
        print(f"{key:40} {statistics.median(r[key] for r in results):8.1f}")
    built = statistics.median(r["built image: start -> healthy s"] for r in results)
    first = statistics.median(r["first-boot steps: start -> healthy s"] for r in results)
    print(f"{'start -> healthy, first-boot / built':40} {first / built:8.2f}x")


if __name__ == "__main__":
    main()
