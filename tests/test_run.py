"""The one subprocess runner: argv only, a timeout always, failures as RuntimeCommandError."""

from __future__ import annotations

import pytest

from holosc.errors import ExitCode, RuntimeCommandError
from holosc.host import run


def test_a_missing_program_names_the_package() -> None:
    with pytest.raises(RuntimeCommandError) as raised:
        run.run(["holosc-no-such-program"], hint="install holosc-tools")
    assert raised.value.exit_code == ExitCode.RUNTIME
    assert raised.value.diagnostics[0].hint == "install holosc-tools"
    assert run.output(["holosc-no-such-program"]) == ""


def test_a_failure_says_the_command_and_its_last_line() -> None:
    with pytest.raises(RuntimeCommandError, match=r"sh -c .* failed \(exit 3\): second"):
        run.run(["sh", "-c", "echo first >&2; echo second >&2; exit 3"])
    assert run.run(["sh", "-c", "exit 3"], check=False).returncode == 3


def test_every_run_has_a_timeout() -> None:
    with pytest.raises(RuntimeCommandError, match=r"timed out after 0\.2 s"):
        run.run(["sleep", "5"], timeout=0.2)


def test_stdin_is_closed() -> None:
    assert run.run(["cat"]).stdout == ""
