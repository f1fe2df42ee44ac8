"""No byte of input ends in an internal error (issue 22, class 5): each input the second
review found ending in exit 70 is a positioned error (exit 3), or an output directory's
file holosc ignores as it ignores any malformed one. tests/test_fuzz_inputs.py looks for
more of the same kind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.inproc import holosc

ONE = "name: demo\nservices:\n  web:\n    image: debian:12\n"


def _write(directory: Path, text: str | bytes, name: str = "holos.yaml") -> Path:
    path = directory / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _refused(tmp_path: Path, *args: str, where: str) -> str:
    """Run holosc; it must exit 3 with a first error line starting with `where`."""
    ran = holosc(*args, cwd=tmp_path)
    assert (ran.code, ran.crashed) == (3, False), ran.stderr
    assert ran.stderr.startswith(where), ran.stderr
    return ran.stderr


@pytest.mark.parametrize(
    ("char", "shown"),
    [("\x01", "U+0001"), ("\x7f", "U+007F"), ("\x80", "U+0080"), ("\ufffe", "U+FFFE")],
)
def test_a_character_yaml_excludes_is_positioned(tmp_path: Path, char: str, shown: str) -> None:
    _write(tmp_path, ONE.replace("debian:12", f"debian:12 # note{char}"))
    said = _refused(tmp_path, "validate", where="holos.yaml:4:28: error: the ")
    assert f"character {shown} is not allowed in YAML" in said


def test_an_include_of_proc_self_environ_is_positioned_and_quotes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLOS_TEST_SECRET", "hunter2")
    monkeypatch.setenv("HOLOSC_ALLOW_PATHS", "/proc")  # else refused before it is read
    _write(tmp_path, "include: [/proc/self/environ]\n" + ONE)
    said = _refused(tmp_path, "validate", where="/proc/self/environ:1:")
    assert "U+0000" in said and "hunter2" not in said


def test_a_merge_chain_past_the_bound_is_positioned(tmp_path: Path) -> None:
    """Anchors that each merge the one before, each nested below the depth bound, made
    PyYAML's flatten_mapping recurse 1 045 times."""
    links = ["s0: &s0 {k: 0}"]
    for j in range(1, 20):
        links.append(f"s{j}: &s{j} " + "{<<: " * 55 + f"*s{j - 1}" + "}" * 55)
    _write(tmp_path, "x-m: {" + ", ".join(links) + ", <<: *s19}\n" + ONE)
    said = _refused(tmp_path, "validate", where="holos.yaml:1:")
    assert "merge keys (<<) chain more than 64 mappings" in said


@pytest.mark.parametrize(
    ("field", "where"),
    [
        ("env_file: 1", "holos.yaml:5:15: error: services.web.env_file: must be a string"),
        (
            "cloud_init: {write_files: 1.5}",
            "holos.yaml:5:31: error: services.web.cloud_init.write_files: must be a list",
        ),
        ("profiles: [1]", "holos.yaml:5:16: error: services.web.profiles[0]: must be a string"),
        ("profiles: [null]", "holos.yaml:5:16: error: services.web.profiles[0]: must be a"),
        ("profiles: [1.5]", "holos.yaml:5:16: error: services.web.profiles[0]: must be a"),
    ],
)
def test_wrong_typed_values_are_positioned(tmp_path: Path, field: str, where: str) -> None:
    _write(tmp_path, ONE + f"    {field}\n  api:\n    image: debian:12\n    depends_on: [web]\n")
    _refused(tmp_path, "build", where=where)


@pytest.mark.parametrize("name", ["Docker\x01file", "Dockerfile\\"])
def test_a_dockerfile_path_a_unit_cannot_name_is_positioned(tmp_path: Path, name: str) -> None:
    _write(tmp_path, "FROM debian:12\n", name)
    _write(tmp_path, f"name: demo\nservices:\n  web:\n    dockerfile: {json.dumps(name)}\n")
    said = _refused(tmp_path, "build", where="holos.yaml:4:17: error: services.web.dockerfile:")
    assert "cannot hold control characters or end in '\\'" in said
    assert not (tmp_path / "deploy").exists()


def test_a_nul_in_a_dockerfile_line_fails_validation(tmp_path: Path) -> None:
    """It passed validate and crashed the build's ssh to the builder (no argv holds NUL)."""
    _write(tmp_path, b"FROM debian:12\nRUN echo a\0b\n", "Dockerfile")
    _write(tmp_path, "name: demo\nservices:\n  web:\n    dockerfile: Dockerfile\n")
    said = _refused(tmp_path, "validate", where="holos.yaml:4:17: error: services.web.dockerfile:")
    assert "Dockerfile:2: a NUL byte is not allowed in a Dockerfile" in said


LOCKS = {
    "infinity": '{"project": "demo", "instances": {"web-0": {"ssh_port": Infinity, "user": "u"}}}',
    "huge": '{"project": "demo", "instances": {"web-0": {"ssh_port": 1e400, "user": "u"}}}',
    "nan": '{"project": "demo", "profiles": [NaN], "instances": {}}',
    "deep": "[" * 100_000 + "]" * 100_000,
    "deep-inside": '{"instances": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "profiles": '{"project": "demo", "profiles": 5, "instances": {}}',
    # found by tests/test_fuzz_inputs.py: a NUL in a file name the export lock lists
    "nul-name": '{"files": {"\\u00000-namespace-demo.yaml": "0", "a/../b": "0"}}',
}


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_a_committed_lock_that_is_no_lock_is_ignored(tmp_path: Path, lock: str) -> None:
    """`build` reads the output's lock, `export -o` the export's; one that is not a lock is
    ignored as any malformed lock is (docs/units.md): addresses are handed out anew."""
    _write(tmp_path, ONE)
    (tmp_path / "deploy").mkdir()
    _write(tmp_path / "deploy", LOCKS[lock], "holos.lock.json")
    (tmp_path / "kv").mkdir()
    _write(tmp_path / "kv", LOCKS[lock], "holos-export.lock")
    for args in (["build"], ["export", "kubevirt", "-o", "kv"]):
        ran = holosc(*args, cwd=tmp_path)
        assert (ran.code, ran.crashed) == (0, False), ran.stderr
    assert json.loads((tmp_path / "deploy" / "holos.lock.json").read_text())["project"] == "demo"


def test_an_xml_encoding_python_cannot_decode_is_invalid_input(tmp_path: Path) -> None:
    xml = '<?xml version="1.0" encoding="utf-7"?>\n<domain><name>db</name></domain>\n'
    _write(tmp_path, xml, "db.xml")
    ran = holosc("import", "--xml", "db.xml", cwd=tmp_path)
    assert (ran.code, ran.crashed) == (3, False), ran.stderr
    assert "db.xml: parse libvirt xml: line 1: cannot read the declared encoding 'utf-7'" in (
        ran.stderr
    )


@pytest.mark.parametrize("line", [b"FILE=./s\0", b'FILE="./s\\0000"'])
def test_a_nul_from_dotenv_is_positioned(tmp_path: Path, line: bytes) -> None:
    """.env values are interpolated after the NUL check of holos.yaml's own text: a NUL
    (raw, or compose's octal escape) reached launch.sh, and a secret's path QEMU's
    option-string escaping refuses."""
    _write(tmp_path, b"IMAGE=./a.qcow2\n" + line + b"\n", ".env")
    _write(tmp_path, ONE + "    secrets: [s]\nsecrets:\n  s: {file: '${FILE}'}\n")
    said = _refused(tmp_path, "build", where="holos.yaml:7:13: error: secrets.s.file: the value")
    assert "a NUL (from the environment or .env)" in said


def test_an_environment_variable_that_is_not_utf8_is_positioned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python keeps such bytes as lone surrogates, which no output file can encode."""
    monkeypatch.setenv("CMDLINE", "console=\udcff")
    _write(tmp_path, ONE + "    vm: {kernel: ./k, cmdline: '${CMDLINE}'}\n")
    said = _refused(tmp_path, "build", where="holos.yaml:5:32: error: services.web.vm.cmdline:")
    assert "bytes that are not UTF-8" in said
