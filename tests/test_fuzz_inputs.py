"""Structure-aware fuzzing of the inputs holosc reads (issue 22, class 5): no input ends
in a traceback or exit 70; each ends in success or a clean error with its exit code.

Each input is generated from valid skeletons, then mutated: subtrees replaced by values of
other types (numbers past any bound, NaN, nested lists, hostile text with `${`, `%`,
quotes, control characters), keys dropped or added, items duplicated; then the text
itself gets bytes inserted (control characters, NUL, U+FFFE, invalid UTF-8, YAML or XML
syntax), lines cut or repeated.

- holos.yaml, with the files it names beside it (an include, an env_file, `.env`, a
  Dockerfile, a secret, a disk) and the environment it interpolates (bytes that are not
  UTF-8 included): `validate`, then `build`, `config` and `export kubevirt -o`;
- Dockerfiles: `validate` and `build`, and the build that compiled through holos-bake's
  own plan, step scripts and builder argv (what `bake` runs, without the VM);
- holos.lock.json and holos-export.lock in the output directories: `build`, `export -o`;
- libvirt domain XML: `import --xml`, then `validate` of the holos.yaml it wrote.

Every command runs in this process (tests/inproc.py): the real CLI and its exit-code
mapping. HYPOTHESIS_PROFILE=ci (the default, CI) runs FUZZ_EXAMPLES["ci"] (340 inputs,
20 to 60 s on the shared test machines); HYPOTHESIS_PROFILE=long runs FUZZ_EXAMPLES["long"]
(11 000, about 40 min). Each test prints how many examples it ran and how they ended.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from holos_runtime import bake
from holos_runtime.health import remote_command
from holos_runtime.imagecache import Cache
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holosc.core.lock import Lock
from holosc.core.render.escape import yaml_document
from holosc.errors import HolosError
from tests.conftest import REPO, require_tool
from tests.inproc import Ran, holosc

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
FUZZ_EXAMPLES = {
    "ci": {"holos.yaml": 100, "Dockerfile": 80, "lock": 40, "xml": 120},
    "long": {"holos.yaml": 3000, "Dockerfile": 2000, "lock": 2000, "xml": 4000},
}[PROFILE]


def _settings(what: str) -> settings:
    return settings(
        max_examples=FUZZ_EXAMPLES[what],
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,  # a failure prints its input; CI keeps no example database
    )


# --- values and mutations -------------------------------------------------------------

NASTY = [
    "", " ", "'", '"', "\\", "$", "${", "${X}", "${X:?boom}", "${X:-d}", "$$", "%", "%i",
    ",", ",,", "=", ":", "#", "&a", "*a", "<<", "{", "[", "-", "--x", "\n", "\r", "\t",
    "\x00", "\x01", "\x1b[31m", "\x7f", "\x85", "\u2028", "\ufffe", "\ud800", "é", "日本",
    "../../etc/passwd", "/etc/shadow", "/proc/self/environ", "/dev/zero", "a" * 300,
    "0", "-1", "1e999", "0x10", "0o17", "1_000", ".inf", ".nan", "yes", "null", "~",
]  # fmt: skip
text = st.one_of(
    st.sampled_from(NASTY),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=6)), max_size=4).map("".join),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1, 65535, 65536, 2**31, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=6,
)


def _paths(tree: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(tree, dict):
        for key, child in tree.items():
            yield from _paths(child, (*path, key))
    elif isinstance(tree, list):
        for i, child in enumerate(tree):
            yield from _paths(child, (*path, i))


def _parent(tree: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        tree = tree[step]
    return tree


@st.composite
def mutated(draw: st.DrawFn, tree: Any, most: int = 3) -> Any:
    """`tree` (deep-copied) with up to `most` changes at random places."""
    tree = copy.deepcopy(tree)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, most]))):
        path = draw(st.sampled_from(list(_paths(tree))))
        if not path:
            continue
        parent, last = _parent(tree, path), path[-1]
        change = draw(st.sampled_from(["replace", "replace", "drop", "add", "repeat", "wrap"]))
        if change == "replace":  # text most often: it reaches the output more than errors
            parent[last] = draw(st.one_of(text, text, values))
        elif change == "drop":
            del parent[last]
        elif change == "add" and isinstance(parent, dict):
            parent[draw(text)] = draw(values)
        elif change == "add":
            parent.insert(last, draw(values))
        elif change == "repeat" and isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
        elif change == "wrap":
            parent[last] = draw(st.sampled_from([[parent[last]], {"x": parent[last]}]))
    return tree


# Inserted into a document's text: syntax of its language, and bytes no text should hold.
BYTES = [
    b"\x00", b"\x01", b"\x1b", b"\x7f", b"\xc2\x80", b"\xef\xbf\xbe", b"\xff", b"\xc3",
    b"\xed\xa0\x80", b"\r", b"\r\n", b"\t", b"\n", b" ", b"\\", b'"', b"'", b"#", b"$",
    b"${", b"%", b",", b":", b"=", b"-", b"\xe2\x80\xa8", b"\xef\xbb\xbf",
]  # fmt: skip


@st.composite
def bytes_mutated(draw: st.DrawFn, data: bytes, syntax: list[bytes]) -> bytes:
    """`data` with a few insertions, deletions, cut or repeated lines."""
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 2, 3]))):
        at = draw(st.integers(0, len(data)))
        change = draw(st.sampled_from(["insert", "insert", "delete", "cut", "repeat"]))
        if change == "insert":
            data = data[:at] + draw(st.sampled_from(BYTES + syntax)) + data[at:]
        elif change == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 8)) :]
        elif change == "cut":
            data = data[:at]
        else:
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            line = data[start : end + 1 if end >= 0 else len(data)]
            data = data[:start] + line * draw(st.integers(2, 3)) + data[start:]
    return data


# --- running holosc ---------------------------------------------------------------------


class Tally:
    """How the examples of one input ended: exit codes, counted; printed at the end."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.examples = 0
        self.codes: collections.Counter[str] = collections.Counter()

    def run(self, *args: str, cwd: Path, allowed: tuple[int, ...] = (0, 3)) -> Ran:
        ran = holosc(*args, cwd=cwd)
        assert not ran.crashed and ran.code in allowed, (
            f"holosc {' '.join(args)} exited {ran.code}:\n{ran.stderr[-3000:]}"
        )
        self.codes[f"{args[0]} {ran.code}"] += 1
        return ran

    def report(self) -> None:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.codes.items()))
        print(f"fuzz {self.what} ({PROFILE}): {self.examples} examples; exits {codes}")


def _fresh(base: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=base))


def _fuzz(
    tmp_path_factory: pytest.TempPathFactory,
    what: str,
    inputs: st.SearchStrategy[Any],
    example: Callable[[Any, Path, Tally], None],
) -> Tally:
    base = tmp_path_factory.mktemp(what.replace(".", "-"))
    tally = Tally(what)

    @_settings(what)
    @given(inputs)
    def fuzz(data: Any) -> None:
        tally.examples += 1
        directory = _fresh(base)
        try:
            example(data, directory, tally)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    fuzz()
    tally.report()
    return tally


# --- holos.yaml ---------------------------------------------------------------------------

DOCKERFILE = "FROM debian:12\nENV A=1\nWORKDIR /srv\nCOPY app.txt ./\nRUN echo ${A}\n"
INCLUDED = {"services": {"extra": {"image": "alpine", "ports": ["7000:70"]}}}


VM = {
    "vcpu": 2, "memory_mb": 1024, "machine": "q35", "cpu_model": "max", "disk_size": "2G",
    "uefi": False, "kernel": "./vmlinuz", "extra_args": ["-smp", "2"],
    "cmdline": "${CMDLINE:-console=ttyS0}",
}  # fmt: skip
HEALTHCHECK = {
    "test": ["CMD", "true"], "interval": "5s", "timeout": "2s", "retries": 3,
    "start_period": "1s",
}  # fmt: skip


@st.composite
def projects(draw: st.DrawFn) -> dict[str, Any]:
    """A valid holos.yaml using most of the format, before mutation."""

    def maybe(field: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in field.items() if draw(st.booleans())}

    vm = maybe(VM)
    if "kernel" not in vm:
        vm.pop("cmdline", None)
    web = {
        "image": draw(st.sampled_from(["debian:12", "./disk.qcow2", "ubuntu:noble", "alpine"])),
        "replicas": draw(st.integers(0, 3)),
        "secrets": ["token", {"source": "token", "target": "/run/t", "mode": "0440"}],
        **maybe(
            {
                "vm": vm,
                "ports": ["8080:80", "9000", "8443:443/tcp"],
                "volumes": ["data:/data:ro", "./share:/srv/share:ro"],
                "environment": draw(
                    st.sampled_from([{"A": "1", "B": "${B_VALUE:-x}"}, ["A=1", "B=${B_VALUE}"]])
                ),
                "env_file": draw(st.sampled_from(["app.env", ["app.env"]])),
                "restart": "on-failure",
                "stop_grace_period": "10s",
                "healthcheck": HEALTHCHECK,
                "cloud_init": {
                    "user": "app",
                    "packages": ["nginx"],
                    "write_files": [
                        {"path": "/etc/x", "content": "y", "permissions": "0644", "owner": "root"}
                    ],
                    "runcmd": ["echo hi", ["echo", "hi"]],
                    "bootcmd": ["true"],
                    "ssh_authorized_keys": ["ssh-ed25519 AAAAC3Nza key"],
                },
                "profiles": ["dev"],
                "devices": [{"pci": "01:00.0"}],
                "depends_on": draw(
                    st.sampled_from(
                        [["db"], {"db": {"condition": "service_started", "required": False}}]
                    )
                ),
            }
        ),
    }
    db = {
        "dockerfile": "Dockerfile",
        **maybe(
            {
                "healthcheck": {"test": "true"},
                "extends": draw(
                    st.sampled_from(["base", {"service": "extra", "file": "inc.yaml"}])
                ),
                "stop_grace_period": "${GRACE:-5s}",  # interpolated from .env
                "cloud_init": {"runcmd": ["echo ${GREETING}", "echo $$HOME"]},
            }
        ),
    }
    return {
        "name": "fuzz",
        **maybe({"include": draw(st.sampled_from([["inc.yaml"], [{"path": "inc.yaml"}]]))}),
        "services": {"web": web, "db": db, "base": {"image": "debian:12", "replicas": 0}},
        "volumes": {"data": {"size": "1G"}},
        "secrets": {
            "token": {"file": "${TOKEN_FILE:-./token.txt}"},
            "other": {"environment": "TOKEN"},
        },
    }


YAML_SYNTAX = [
    b"&a ", b"*a", b"<<: *a\n", b"!!python/object:os.system ", b"!!binary ", b"? ", b"- ",
    b"{", b"}", b"[", b"]", b"---\n", b"...\n", b"%YAML 1.1\n", b"|\n", b">-\n", b"\n  ",
]  # fmt: skip


def _environment_value(value: str) -> str:
    """`value` as an environment variable can hold it: no NUL, and only the lone
    surrogates Python makes of bytes that are not UTF-8 (U+DC80-U+DCFF)."""
    return re.sub("[\0\ud800-\udc7f\udd00-\udfff]", "", value)


@st.composite
def holos_files(draw: st.DrawFn) -> tuple[bytes, dict[str, bytes], dict[str, str]]:
    data = draw(mutated(draw(projects()), most=4))
    # The environment the values interpolate: any text a variable can hold, bytes that
    # are not UTF-8 included (Python reads them as lone surrogates).
    environ = draw(
        st.dictionaries(
            st.sampled_from(["CMDLINE", "B_VALUE", "TOKEN_FILE", "GRACE", "X"]),
            st.one_of(text, st.just("not \udcff UTF-8")).map(_environment_value),
        )
    )
    # PyYAML's own emitter: libyaml refuses lone surrogates, which holosc must refuse too.
    document = yaml_document(data, libyaml=False).encode("utf-8", "surrogatepass")
    included = yaml_document(draw(mutated(INCLUDED, most=2)), libyaml=False)
    side = {
        "inc.yaml": included.encode("utf-8", "surrogatepass"),
        "app.env": draw(
            bytes_mutated(b'A=1\nexport B=\'two\'\nC="x \\"y\\""  # c\n', [b"=", b"'"])
        ),
        ".env": draw(bytes_mutated(b"GRACE=10s\nGREETING='hello, world'\n", [b"=", b"${"])),
        "Dockerfile": draw(bytes_mutated(DOCKERFILE.encode(), [b"\\\n", b"RUN ", b"COPY "])),
    }
    return draw(bytes_mutated(document, YAML_SYNTAX)), side, environ


def _holos_yaml(
    data: tuple[bytes, dict[str, bytes], dict[str, str]], directory: Path, tally: Tally
) -> None:
    text, side, environ = data
    (directory / "holos.yaml").write_bytes(text)
    for name, content in side.items():
        (directory / name).write_bytes(content)
    (directory / "app.txt").write_text("app\n")
    (directory / "token.txt").write_text("s3cret\n")
    (directory / "disk.qcow2").write_bytes(b"")
    (directory / "vmlinuz").write_bytes(b"")
    (directory / "share").mkdir()
    before = dict(os.environ)
    os.environ.update(environ)
    try:
        if tally.run("validate", "-q", cwd=directory).code == 0:
            tally.run("build", "-o", "out", cwd=directory)
            tally.run("config", cwd=directory)
            tally.run("export", "kubevirt", "-o", "kv", cwd=directory)
    finally:
        os.environ.clear()
        os.environ.update(before)


def test_no_holos_yaml_ends_in_an_internal_error(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN", "t")
    tally = _fuzz(tmp_path_factory, "holos.yaml", holos_files(), _holos_yaml)
    assert tally.codes["validate 0"] and tally.codes["validate 3"], tally.codes


# --- Dockerfiles ------------------------------------------------------------------------

# Instructions holosc converts, skips with a warning, or refuses (with a hint).
CONVERTED = [
    "RUN apt-get install -y nginx", 'RUN ["sh", "-c", "echo $A"]', "RUN echo a \\\n  b",
    "COPY app.txt /srv/", "COPY --chmod=0644 --chown=app:app app.txt /srv/app.txt",
    "ADD app.txt /a", "ENV A=1 B=${A:-2}", "ENV C $A", "ARG V=1", "WORKDIR ${V}/w",
    "WORKDIR relative", 'SHELL ["/bin/bash", "-c"]', "CMD x", "EXPOSE 80", "LABEL a=b",
    "# comment", "", "   ", "run lowercase", "ARG W",
]  # fmt: skip
REFUSED = [
    "FROM ./base.qcow2 AS x", 'RUN ["unterminated', "COPY --from=x a b",
    "COPY missing.txt /x", "COPY ../outside /x", "ADD https://example.com/x /x",
    "SHELL bash", "USER app", "HEALTHCHECK NONE", "VOLUME /v", "ONBUILD RUN x",
    "RUN <<EOF\necho\nEOF", "# escape=`", "FORM typo", "COPY", "ENV", "ARG", "WORKDIR",
    "RUN",
]  # fmt: skip


@st.composite
def dockerfiles(draw: st.DrawFn) -> bytes:
    instruction = st.one_of(*[st.sampled_from(CONVERTED)] * 4, st.sampled_from(REFUSED))
    lines = ["FROM debian:12", *draw(st.lists(instruction, max_size=8))]
    lines = draw(mutated(lines, most=2))
    rendered = "\n".join(str(line) for line in lines) + "\n"
    syntax = [b"\\\n", b"$", b"${", b"[", b'"', b"--chmod=", b"<<EOF\n", b"\r\n"]
    return draw(bytes_mutated(rendered.encode("utf-8", "surrogatepass"), syntax))


@functools.cache
def _base_image() -> bytes:
    """A real, empty qcow2 image (holos-bake reads a base's header before it keys it)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.qcow2"
        qemu_img = require_tool("qemu-img")
        subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(path), "1M"], check=True)
        return path.read_bytes()


def _dockerfile(data: bytes, directory: Path, tally: Tally) -> None:
    (directory / "Dockerfile").write_bytes(data)
    (directory / "app.txt").write_text("app\n")
    (directory / "base.qcow2").write_bytes(_base_image())
    (directory / "holos.yaml").write_text(
        "name: fuzz\nservices:\n  app:\n    dockerfile: Dockerfile\n    image: ./base.qcow2\n"
    )
    if tally.run("validate", "-q", cwd=directory).code != 0:
        return
    tally.run("build", "-o", "out", cwd=directory)
    spec = json.loads((directory / "out" / "fuzz" / "app.build.json").read_text())
    _bake_plans(spec, directory)


def _bake_plans(spec: dict[str, Any], directory: Path) -> None:
    """What `holosc bake` would run, short of the builder VM: every step's command line
    to the builder's shell and the builder's QEMU argv (argv cannot hold NUL)."""
    images = directory / "images"
    images.mkdir()
    built = bake.plan(spec, Cache(images), directory)
    for step in built.steps:
        line = remote_command(["/bin/sh", "-c", step.script])
        assert "\0" not in line, step
    vm = bake.VM(directory, built, lambda _: None)
    argv = vm.argv(directory / "disk.qcow2", directory / "seed.iso")
    assert all("\0" not in arg for arg in argv), argv


def test_no_dockerfile_ends_in_an_internal_error(tmp_path_factory: pytest.TempPathFactory) -> None:
    tally = _fuzz(tmp_path_factory, "Dockerfile", dockerfiles(), _dockerfile)
    assert tally.codes["validate 0"] and tally.codes["validate 3"], tally.codes


# --- lock files ---------------------------------------------------------------------------

LOCK_PROJECT = """\
name: fuzz
services:
  web:
    image: debian:12
    replicas: 2
    ports: ["8080:80", "9000"]
  db:
    image: alpine
"""
JSON_SYNTAX = [
    b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-0", b"[" * 2000, b"{", b"}", b",",
    b'"', b"\\u0000", b"\\ud800", b"null", b"true",
]  # fmt: skip


@pytest.fixture(scope="module")
def locks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The lock and the export lock a real build and export write for LOCK_PROJECT."""
    directory = tmp_path_factory.mktemp("locks")
    (directory / "holos.yaml").write_text(LOCK_PROJECT)
    for args in (["build", "-o", "out"], ["export", "kubevirt", "-o", "kv"]):
        assert holosc(*args, cwd=directory).code == 0
    return {
        "holos.lock.json": json.loads((directory / "out" / "holos.lock.json").read_text()),
        "holos-export.lock": json.loads((directory / "kv" / "holos-export.lock").read_text()),
    }


@st.composite
def lock_texts(draw: st.DrawFn, skeleton: Any) -> bytes:
    tree = draw(mutated(skeleton, most=4))
    text = json.dumps(tree, allow_nan=True).encode("utf-8", "surrogatepass")
    return draw(bytes_mutated(text, JSON_SYNTAX))


def _lock(data: tuple[bytes, bytes], directory: Path, tally: Tally) -> None:
    lock, export_lock = data
    (directory / "holos.yaml").write_text(LOCK_PROJECT)
    (directory / "out").mkdir()
    (directory / "out" / "holos.lock.json").write_bytes(lock)
    (directory / "kv").mkdir()
    (directory / "kv" / "holos-export.lock").write_bytes(export_lock)
    with contextlib.suppress(ValueError, HolosError):  # the reader's contract: these only
        Lock.from_json(lock, "holos.lock.json")
    tally.run("build", "-o", "out", cwd=directory, allowed=(0,))
    tally.run("export", "kubevirt", "-o", "kv", cwd=directory, allowed=(0,))


def test_no_lock_file_ends_in_an_internal_error(
    tmp_path_factory: pytest.TempPathFactory, locks: dict[str, Any]
) -> None:
    inputs = st.tuples(lock_texts(locks["holos.lock.json"]), lock_texts(locks["holos-export.lock"]))
    tally = _fuzz(tmp_path_factory, "lock", inputs, _lock)
    assert tally.codes["build 0"] == tally.examples, tally.codes


# --- libvirt domain XML -------------------------------------------------------------------

XML_SKELETONS = sorted((REPO / "tests" / "data" / "libvirt").glob("*.xml"))
XML_SYNTAX = [
    b"<!DOCTYPE d [<!ENTITY e 'x'>]>", b"&e;", b"&amp;", b"&#0;", b"&#x1F;", b"<![CDATA[",
    b"]]>", b"<", b">", b"</domain>", b"<domain>", b"<?xml version='1.0'?>", b"xmlns:q='u'",
]  # fmt: skip
ENCODINGS = ["utf-8", "UTF-16", "utf-7", "latin-1", "cp1252", "shift_jis", "bogus", "ascii"]


def _elements(root: ET.Element) -> list[tuple[ET.Element | None, ET.Element]]:
    """Every element with its parent (None for the root)."""
    found: list[tuple[ET.Element | None, ET.Element]] = [(None, root)]
    for parent in root.iter():
        found += [(parent, child) for child in parent]
    return found


@st.composite
def domain_xml(draw: st.DrawFn) -> bytes:
    root = ET.fromstring(draw(st.sampled_from(XML_SKELETONS)).read_text())
    for _ in range(draw(st.integers(0, 4))):
        parent, element = draw(st.sampled_from(_elements(root)))
        change = draw(st.sampled_from(["text", "attribute", "drop", "repeat", "child"]))
        clean = draw(text).encode("utf-8", "replace").decode()  # ET writes text, not bytes
        clean = "".join(c for c in clean if c >= " " or c in "\t\n")
        if change == "text":
            element.text = draw(st.sampled_from([clean, "-1", "0", "1e9", "99999999999999999"]))
        elif change == "attribute" and element.attrib:
            key = draw(st.sampled_from(sorted(element.attrib)))
            element.set(key, draw(st.sampled_from([clean, "", "0xZZ", "KiB", "TB", "-5"])))
        elif change == "drop" and parent is not None:
            parent.remove(element)
        elif change == "repeat" and parent is not None:
            parent.append(copy.deepcopy(element))
        elif change == "child":
            element.append(ET.Element(draw(st.sampled_from(["name", "memory", "vcpu", "x"]))))
    data = ET.tostring(root)
    if draw(st.booleans()):
        encoding = draw(st.sampled_from(ENCODINGS))
        data = f'<?xml version="1.0" encoding="{encoding}"?>\n'.encode() + data
    return draw(bytes_mutated(data, XML_SYNTAX))


def _xml(data: bytes, directory: Path, tally: Tally) -> None:
    (directory / "domain.xml").write_bytes(data)
    ran = tally.run("import", "--xml", "domain.xml", "-o", "holos.yaml", cwd=directory)
    if ran.code == 0:  # what import writes is a holos.yaml: it may be refused, not crash
        tally.run("validate", "-q", cwd=directory)


def test_no_domain_xml_ends_in_an_internal_error(tmp_path_factory: pytest.TempPathFactory) -> None:
    tally = _fuzz(tmp_path_factory, "xml", domain_xml(), _xml)
    assert tally.codes["import 0"] and tally.codes["import 3"], tally.codes
