"""Every ratio of issue #17 from one command (prints numbers, asserts nothing).

1. startup: `holosc --help`, `ps`, `validate` against `python -c pass` (bench/startup.py);
2. compile: instances/s at 1, 23 and 253 instances, the 253-instance `holosc build` as a
   whole process (bench/compile.py);
3. boot: start -> healthy against the guest's own boot, one instance and the stack against
   its critical path (bench/boot.py; root and the e2e test guest: it boots real guests, so
   run this under the VM lock);
4. lifecycle: `ps` of 253 installed instances and an unchanged `up`, against a private
   systemd (bench/lifecycle.py; root only, skipped otherwise).

Usage: python bench/run_all.py [RUNS] [BEFORE] [--no-boot]
This machine is shared: runs are interleaved and reported as medians. BEFORE: a checkout of
an earlier commit with its own .venv, measured in the same rounds ("(before)" rows).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import boot, lifecycle, startup
from bench import compile as compile_bench


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--no-boot"]
    runs = int(args[0]) if args else 11
    before = Path(args[1]).resolve() if len(args) > 1 else None
    print(f"== 1. startup (median of {runs} interleaved runs)")
    with tempfile.TemporaryDirectory() as tmp:
        stub = startup.stub_systemctl(Path(tmp))
        startup.report(startup.interleaved(startup.cases(stub, before=before), runs))
    print("\n== 2. compile")
    compile_bench.growth()
    if before is not None:
        compile_bench.growth_before(before)
    old = [str(before / ".venv" / "bin" / "holosc")] if before else None
    compile_bench.report_build(compile_bench.whole_build(compile_bench.holosc_argv(), before=old))
    print("\n== 3. boot")
    if os.geteuid() == 0 and "--no-boot" not in sys.argv:
        boot.main()
    else:
        print("skipped: needs root (or --no-boot given)")
    print("\n== 4. lifecycle")
    if os.geteuid() == 0:
        sys.argv[1:] = [str(max(3, runs // 2)), *([str(before)] if before else [])]
        lifecycle.main()
    else:
        print("skipped: needs root for a private systemd")


if __name__ == "__main__":
    main()
