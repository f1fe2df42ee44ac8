"""Per-feature fixtures: tests/cases/*.yaml carry their assertions as leading comments.

Success cases (`<feature>.yaml`), verbs (a leading `!` negates):
  assert-key-is UNIT SECTION KEY VALUE       all values of KEY, space-joined, equal VALUE
  assert-key-contains UNIT SECTION KEY VALUE one value of KEY equals VALUE
  assert-has-key UNIT SECTION KEY
  assert-file-exists PATH
  assert-file-contains PATH TEXT
  assert-qemu-args INSTANCE ARG...           consecutive words of the QEMU command line
  assert-qemu-netdev INSTANCE TEXT           the user-mode -netdev value contains TEXT
  assert-qemu-last INSTANCE ARG...           the QEMU command line ends with these words
  assert-warning MESSAGE
  use-profile NAME                           compile with profile NAME active
Error cases (`<name>.error.yaml`): `assert-error MESSAGE` lines list every error exactly;
A success case with no assert-warning
must compile without warnings.
"""

from __future__ import annotations

import shlex
from pathlib import Path, PurePosixPath

import pytest

from holosc.core.compiler import Output, compile_project
from holosc.core.validate.checks import build_project
from holosc.errors import HolosError
from holosc.load.files import HostFiles
from holosc.load.parse import load_text

CASES = Path(__file__).parent / "cases"
ENV = {"GREETING": "hello from holosc", "API_TOKEN": "not-a-real-token"}


def _assertions(text: str) -> list[list[str]]:
    result = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        words = shlex.split(line[1:])
        if words and words[0].lstrip("!").startswith(("assert-", "use-")):
            result.append(words)
    return result


def _units(output: Output, name: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in output.files[PurePosixPath(name)].data.decode().splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


def qemu_argv(output: Output, project: str, instance: str) -> list[str]:
    script = output.files[PurePosixPath(f"{project}/{instance}/launch.sh")].data.decode()
    command = script[script.index("exec qemu-system-x86_64") :]
    return shlex.split(command.replace("\\\n", " "))[2:]


def _contains_run(haystack: list[str], needle: list[str]) -> bool:
    return any(haystack[i : i + len(needle)] == needle for i in range(len(haystack)))


def _check(verb: str, args: list[str], output: Output, project: str, warnings: list[str]) -> bool:
    files = {str(p): f for p, f in output.files.items()}
    if verb == "assert-file-exists":
        return args[0] in files
    if verb == "assert-file-contains":
        return args[1] in files[args[0]].data.decode()
    if verb in ("assert-key-is", "assert-key-contains", "assert-has-key"):
        unit, section, key = args[:3]
        values = _units(output, unit).get(section, {}).get(key, [])
        if verb == "assert-has-key":
            return bool(values)
        return " ".join(values) == args[3] if verb == "assert-key-is" else args[3] in values
    if verb == "assert-qemu-args":
        return _contains_run(qemu_argv(output, project, args[0]), args[1:])
    if verb == "assert-qemu-last":
        argv = qemu_argv(output, project, args[0])
        return argv[-len(args[1:]) :] == args[1:]
    if verb == "assert-qemu-netdev":
        argv = qemu_argv(output, project, args[0])
        netdev = next(a for a in argv if a.startswith("user,id=slirp"))
        return args[1] in netdev.split(",")
    if verb == "assert-warning":
        return args[0] in warnings
    raise AssertionError(f"unknown verb {verb}")


@pytest.mark.parametrize(
    "case", sorted(p.name for p in CASES.glob("*.yaml") if not p.name.endswith(".error.yaml"))
)
def test_feature_case(case: str) -> None:
    text = (CASES / case).read_text()
    doc = load_text(text, directory=CASES, environ=ENV)
    assertions = _assertions(text)
    profiles = [a[1] for a in assertions if a[0] == "use-profile"]
    assertions = [a for a in assertions if a[0] != "use-profile"]
    result = build_project(doc, HostFiles(), profiles=profiles)
    output = compile_project(result.project)
    warnings = [str(w) for w in result.warnings]
    assert assertions, f"{case} has no assertions"
    if not any(a[0] == "assert-warning" for a in assertions):
        assert not warnings, warnings
    for words in assertions:
        verb, args = words[0], words[1:]
        negate = verb.startswith("!")
        ok = _check(verb.lstrip("!"), args, output, result.project.name, warnings)
        assert ok != negate, f"{case}: failed {' '.join(map(shlex.quote, words))}"


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.glob("*.error.yaml")))
def test_error_case(case: str) -> None:
    text = (CASES / case).read_text()
    expected = [a[1] for a in _assertions(text) if a[0] == "assert-error"]
    assert expected, f"{case} lists no assert-error"
    with pytest.raises(HolosError) as info:
        build_project(load_text(text, directory=CASES, environ={}), HostFiles())
    errors = [str(d) for d in info.value.diagnostics if d.severity == "error"]
    assert sorted(errors) == sorted(expected)
