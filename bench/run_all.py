"""Every ratio of issue #17 from one command (prints numbers, asserts nothing).

1. startup: `holosc --help`, `ps`, `validate` against `python -c pass` (bench/startup.py);
2. compile: instances/s at 1, 23 and 253 instances, the 253-instance `holosc build` as a
   whole process (bench/compile.py);
4. lifecycle: `ps` of 253 installed instances and an unchanged `up`, against a private
   systemd (bench/lifecycle.py; root only, skipped otherwise).

Usage: python bench/run_all.py [RUNS]   (this machine is shared: runs are interleaved and
reported as medians)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import compile as compile_bench
from bench import lifecycle, startup


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    print(f"== 1. startup (median of {runs} interleaved runs)")
    with tempfile.TemporaryDirectory() as tmp:
        startup.report(startup.interleaved(startup.cases(startup.stub_systemctl(Path(tmp))), runs))
    print("\n== 2. compile")
    compile_bench.growth()
    compile_bench.report_build(compile_bench.whole_build(compile_bench.holosc_argv()))
    print("\n== 4. lifecycle")
    if os.geteuid() == 0:
        sys.argv[1:] = [str(max(3, runs // 2))]
        lifecycle.main()
    else:
        print("skipped: needs root for a private systemd")


if __name__ == "__main__":
    main()
