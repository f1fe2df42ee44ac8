"""Collect the `E2E_METRIC name=value` lines the end-to-end tests print.

    .venv/bin/python -m pytest tests/e2e tests/test_lifecycle.py -s | tee e2e.log
    .venv/bin/python bench/e2e_report.py e2e.log

Prints one line per metric (seconds unless the name says otherwise) and, when the stack
scenario ran, time-to-all-ready against the sum of the individual boots.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

METRIC = re.compile(r"E2E_METRIC (\w[\w.-]*)=([-\d.]+)")


def main(argv: list[str]) -> int:
    text = Path(argv[1]).read_text(errors="replace") if len(argv) > 1 else sys.stdin.read()
    metrics: dict[str, float] = {}
    for name, value in METRIC.findall(text):
        metrics[name] = float(value)
    for name, value in metrics.items():
        print(f"{name:<40} {value:10.1f}")
    if "stack_all_ready_s" in metrics and "sum_of_boots_s" in metrics:
        ratio = metrics["stack_all_ready_s"] / metrics["sum_of_boots_s"]
        print(f"{'stack ready / sum of boots':<40} {ratio:10.2f}")
    return 0 if metrics else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
