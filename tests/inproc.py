"""`holosc ARGS` run inside the test process: the real command line (typer, the exit-code
mapping of holosc.cli.main, tracebacks included), without a Python start per run.

For the fuzzers (tests/test_fuzz_inputs.py), which run thousands of inputs; other tests
use tests.conftest.run_holosc, a real process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from holosc.cli import main
from holosc.errors import ExitCode


@dataclasses.dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def crashed(self) -> bool:
        """An internal error: exit 70, or a traceback whatever the code."""
        return self.code == ExitCode.INTERNAL or "Traceback (most recent call last)" in self.stderr


@contextlib.contextmanager
def _cwd(path: Path | None) -> Iterator[None]:
    before = Path.cwd()
    if path is not None:
        os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def holosc(*args: str, cwd: Path | None = None) -> Ran:
    """Run `holosc ARGS` as holosc.cli.main runs it, and its exit code."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["holosc", *args]
    code = 0
    try:
        with _cwd(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return Ran(code, out.getvalue(), err.getvalue())
