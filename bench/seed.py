"""Cost at start of the per-host seed: holos-seed as the unit's ExecStartPre runs it.

Prints, for one instance of golden/three-tier, the wall time of the whole helper process
(interpreter start, imports, keys, ISO, writes) on a first start (keys generated) and on
a restart (keys kept), plus the time the helper itself reports and the ISO build alone.

    .venv/bin/python bench/seed.py [runs]
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEXTS = REPO / "golden" / "three-tier" / "shop" / "web-1"
HELPER = Path(sys.executable).with_name("holos-seed")


def once(host: Path) -> tuple[float, float]:
    state = host / "instances" / "shop" / "web-1"
    state.mkdir(parents=True, exist_ok=True)
    argv = [
        str(HELPER), "--instance", "web-1", "--seed-dir", str(TEXTS), "--state", str(state),
        "--key", str(host / "ssh" / "shop" / "id_ed25519"), "--alias", "web-1.shop.holos",
        "--out", str(host / "seed.iso"),
    ]  # fmt: skip
    began = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - began
    inner = float(re.findall(r"seed ready in ([\d.]+) s", result.stderr)[0])
    return wall, inner


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    first, restart = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            host = Path(tmp) / f"host{i}"
            first.append(once(host))
            restart.append(once(host))
    from holos_runtime.seed import build_iso

    texts = {n: (TEXTS / n).read_bytes() for n in ("user-data", "meta-data", "network-config")}
    texts["vendor-data"] = b"#cloud-config\n{}\n" + b"x" * 600
    build_iso(texts)  # import and warm up
    iso = []
    for _ in range(runs):
        began = time.perf_counter()
        build_iso(texts)
        iso.append(time.perf_counter() - began)
    med = statistics.median
    print(f"runs={runs}")
    print(f"first_start_process_s={med(w for w, _ in first):.3f}")
    print(f"first_start_helper_s={med(i for _, i in first):.3f}  (two ssh-keygen + ISO)")
    print(f"restart_process_s={med(w for w, _ in restart):.3f}")
    print(f"restart_helper_s={med(i for _, i in restart):.3f}")
    print(f"iso_build_only_s={med(iso):.4f}")


if __name__ == "__main__":
    main()
