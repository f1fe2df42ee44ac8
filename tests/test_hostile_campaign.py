"""The hostile-value campaign: hypothesis writes holos.yaml files whose every free-text
field holds spaces, quotes, `$`, `%`, backticks, newlines, leading `-`, unicode and long
text, keeps those that validate, and checks the compiled output with the real consumers:

- every unit file is `Key=value` lines in sections, nothing else (a sample also passes
  `systemd-analyze verify` silently);
- every launch.sh passes `bash -n` (a sample also passes shellcheck), and bash itself,
  expanding the QEMU command line, the `cpu=` line, the disk's overlay command and the
  virtiofs shares, yields each value as exactly the word or QEMU option value it was meant to be;
- user-data re-parses (PyYAML, as cloud-init) to exactly the input values;
- fstab lines read back (findmnt) to the mount targets.

The number of examples is printed. CI runs the "ci" profile (about 30 s here);
`HYPOTHESIS_PROFILE=long` runs 2,000 examples.
"""

from __future__ import annotations

import os
import posixpath
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holosc.core.compiler import Output, compile_project
from holosc.core.render import hosts
from holosc.core.render.escape import yaml_document
from holosc.core.validate.checks import build_project
from holosc.errors import HolosError
from holosc.load.files import HostFiles
from holosc.load.parse import load_text
from tests.conftest import require_tool
from tests.staging import verify_root

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "long", max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck)
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
# Examples that also go through systemd-analyze verify and shellcheck (slow ones).
SAMPLE = int(os.environ.get("HOLOSC_CAMPAIGN_DEEP", "2"))

# Free text: what a hostile or careless author writes. No NUL and no lone surrogate
# (both are load errors, tested in tests/cases/errors-nul.error.yaml).
NASTY = [
    " ", "'", '"', "\\", "$", "$HOME", "${x}", "$(id)", "`id`", "%", "%i", "%%", ";", "&",
    "|", "\n", "\t", "\r", ",", ",,", "=", "#", "*", "~", "-", "--", "-oProxyCommand=x",
    "é", "日本", "\u2028", "\x85", "\x1b[31m", "\x7f", "{{", "}}", ":",
]  # fmt: skip
_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")
text = st.one_of(
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(_chars, max_size=8)), max_size=6).map(
        "".join
    ),
    st.text(_chars, min_size=200, max_size=400),  # long
)
nonempty = text.filter(lambda t: t != "")
# Path-like fields cannot hold ":" (the volume syntax splits on it).
path_text = text.map(lambda t: t.replace(":", "_"))
# The machine type and CPU model sit where QEMU has no escape: holosc takes only names
# (and -cpu's features); tests/test_option_strings.py checks that the rest is refused.
qemu_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}", fullmatch=True).filter(
    lambda n: n != "help"
)
cpu_models = st.tuples(
    qemu_names,
    st.lists(st.from_regex(r"[+-]?[a-z0-9_.-]{1,8}(=[a-z0-9:._+-]{0,6})?", fullmatch=True)),
).map(lambda m: ",".join([m[0], *m[1]]))


def _secret_target(t: str) -> str:
    return posixpath.normpath("/" + t.replace("\n", " ") + "/s")


def _rel_path(t: str) -> str:
    return "./" + (t.replace(":", "_").lstrip("/~") or "x")


@st.composite
def projects(draw: st.DrawFn) -> dict[str, Any]:
    """holos.yaml data with hostile text in every free-text field."""
    replicas = draw(st.integers(1, 2))
    mode = "rw" if replicas == 1 else "ro"  # a named volume has one writer at most
    service: dict[str, Any] = {
        "image": draw(path_text.map(lambda t: _rel_path(t) + ".qcow2")),
        "replicas": replicas,
        "vm": {
            "machine": draw(qemu_names),
            "cpu_model": draw(cpu_models),
            "extra_args": draw(st.lists(text, max_size=3)),
            "kernel": draw(path_text.map(_rel_path)),
            # Absolute, and not a directory of this host (`/`, `/tmp`): that is refused.
            "initrd": draw(path_text.map(lambda t: "/" + t.lstrip("/") + ".img")),
            "cmdline": draw(text),
        },
        "volumes": [
            "data:/" + draw(path_text).strip("/") + f"/v:{mode}",
            _rel_path(draw(path_text)) + ":/" + draw(path_text).strip("/") + "/b:ro",
        ],
        "devices": [{"pci": "01:00.0", "rom_file": draw(path_text.map(_rel_path))}],
        "cloud_init": {
            "user": draw(st.from_regex(r"[a-z_][a-z0-9_-]{0,8}", fullmatch=True)),
            "ssh_authorized_keys": draw(st.lists(text, max_size=2)),
            "packages": draw(st.lists(text, max_size=2)),
            "write_files": [
                {
                    "path": "/" + draw(text).lstrip("/"),
                    "content": draw(text),
                    "owner": draw(text),
                    "permissions": "0640",
                }
            ],
            "runcmd": draw(st.lists(st.one_of(text, st.lists(text, min_size=1)), max_size=3)),
            "bootcmd": draw(st.lists(st.one_of(text, st.lists(text, min_size=1)), max_size=2)),
        },
        "healthcheck": {
            "test": draw(
                st.one_of(
                    st.lists(text, min_size=1, max_size=4).map(lambda a: ["CMD", *a]),
                    nonempty.filter(str.strip).map(lambda c: ["CMD-SHELL", c]),
                )
            ),
            "interval": "1s",
        },
        # Values reach sshd_config and a profile.d script; sshd cannot carry line breaks.
        "environment": draw(
            st.dictionaries(
                st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
                text.map(lambda t: t.replace("\n", " ").replace("\r", " ")),
                max_size=3,
            )
        ),
        # A target must be a plain absolute path without a line break.
        "secrets": [{"source": "s", "target": draw(path_text.map(_secret_target))}],
    }
    return {
        "name": "camp",
        "services": {"web": service},
        "volumes": {"data": {}},
        "secrets": {"s": {"file": _rel_path(draw(path_text))}},
    }


def literal(value: Any) -> Any:
    """`value` as holos.yaml must spell it: `$` starts an interpolation, `$$` is one `$`."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [literal(v) for v in value]
    if isinstance(value, dict):
        return {k: literal(v) for k, v in value.items()}
    return value


def compiled(data: dict[str, Any]) -> tuple[Output, Any] | None:
    """The output, or None when validation refuses the values (never an internal error)."""
    text_ = yaml_document(literal(data))
    try:
        result = build_project(
            load_text(text_, directory=Path("/nonexistent"), environ={}), HostFiles()
        )
    except HolosError:
        return None
    return compile_project(result.project), result.project


# --- invariants -----------------------------------------------------------------------

_UNIT_LINE = re.compile(r"\[[A-Za-z-]+\]|[A-Za-z]+=.*|#.*|")


def check_units(output: Output) -> None:
    for path, file in output.files.items():
        if path.suffix in (".service", ".target"):
            for line in file.data.decode().split("\n"):
                assert _UNIT_LINE.fullmatch(line), f"{path}: {line!r}"


# Run-time values for the launch script's variables, as its prologue would set them.
PROLOGUE = (
    "accel=tcg cpu=max run=/run/x run_q=/run/x state=/st state_q=/st here=/h here_q=/h "
    "project=/p project_q=/p volumes=/v volumes_q=/v images=/i ovmf_code_q=/o switch_q=/s\n"
)


def bash_words(bash: str, script: str) -> list[str]:
    """NUL-separated words printed by `script` under bash."""
    result = subprocess.run(
        [bash, "-c", "set -eu\n" + PROLOGUE + script], capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().split("\0")[:-1]


def qemu_opts(value: str) -> list[str]:
    """A QEMU option string split at single commas, `,,` read back as `,`."""
    parts, current, i = [], "", 0
    while i < len(value):
        if value[i] == ",":
            if value[i + 1 : i + 2] == ",":
                current += ","
                i += 2
                continue
            parts.append(current)
            current = ""
        else:
            current += value[i]
        i += 1
    return [*parts, current]


def host(path: str) -> str:
    return path if path.startswith("/") else "/p/" + posixpath.normpath(path)


HOST_CPU = '[ "$accel" = kvm ] || cpu=max${cpu#host}  # -cpu host needs KVM; its features stay'
SHARES_START = 'die "virtiofsd did not create $1"\n}\n'
CONSOLE_LOG = "\n# QEMU's -daemonize sets umask"
SECRETS = "\n# Secrets reach the guest as fw_cfg files"
DISK = (
    "\n\n# The disk: an overlay created once on the image's digest, which it keeps for life;"
    " a\n# local image that changed since is refused (docs/images.md).\n"
)
AFTER_DISK = ("\n\novmf_code=", "\n\n# Bind mounts", SECRETS, CONSOLE_LOG)


def _between(script: str, start: str, end: str) -> str:
    begin = script.index(start) + len(start)
    return script[begin : script.index(end, begin)]


def check_launch(output: Output, project: Any, bash: str) -> None:
    service = project.services[0]
    vm = service.vm
    for inst in range(service.replicas):
        script = output.files[PurePosixPath(f"camp/web-{inst}/launch.sh")].data.decode()
        syntax = subprocess.run([bash, "-n"], input=script.encode(), capture_output=True)
        assert syntax.returncode == 0, syntax.stderr
        command = script[script.index("exec qemu-system-x86_64") :]
        argv = bash_words(bash, "printf '%s\\0' " + command.removeprefix("exec "))[1:]
        assert argv[-len(vm.extra_args) :] == list(vm.extra_args) if vm.extra_args else True
        assert argv[argv.index("-append") + 1] == vm.cmdline
        assert argv[argv.index("-kernel") + 1] == host(vm.kernel)
        assert argv[argv.index("-initrd") + 1] == host(vm.initrd)
        assert argv[argv.index("-name") + 1] == f"web-{inst}"
        assert qemu_opts(argv[argv.index("-machine") + 1])[0] == vm.machine
        vfio = next(a for a in argv if a.startswith("vfio-pci,"))
        rom = service.devices[0].rom_file
        assert qemu_opts(vfio) == ["vfio-pci", "host=0000:01:00.0", f"romfile={host(rom)}"]
        # cpu=, the disk's overlay command and the virtiofs shares, as bash reads them
        # (values may span lines).
        cpu = _between(script, "\ncpu=", DISK).replace(HOST_CPU, "")
        assert bash_words(bash, "cpu=" + cpu + "\nprintf '%s\\0' \"$cpu\"") == [vm.cpu_model]
        after = min(script.index(m, script.index(DISK)) for m in AFTER_DISK if m in script)
        overlay = script[script.index(DISK) + len(DISK) : after]
        words = bash_words(bash, "holos-image() { printf '%s\\0' \"$@\"; }\n" + overlay)
        assert words[:3] == ["overlay", "--disk", "/st/root.qcow2"], words
        assert words[-2:] == ["--file", host(service.image.path)], words
        shares = _between(script, SHARES_START, SECRETS if SECRETS in script else CONSOLE_LOG)
        words = bash_words(bash, "share() { printf '%s\\0' \"$@\"; }\n" + shares)
        # socket (relative to $run, unique on the host), source, read-only mode
        assert re.fullmatch(r"fs0-[0-9a-f]{12}\.sock", words[0]), words
        assert words[1:] == [host(service.binds[0].source), "ro"]


def check_user_data(output: Output, project: Any, bash: str) -> None:
    service = project.services[0]
    ci = service.cloud_init
    doc = yaml.safe_load(output.files[PurePosixPath("camp/web-0/user-data")].data)
    user = doc["user"]
    assert user["name"] == ci.user
    assert user.get("ssh_authorized_keys", [])[: len(ci.ssh_authorized_keys)] == list(
        ci.ssh_authorized_keys
    )
    assert doc.get("packages", []) == list(ci.packages)
    wf = ci.write_files[0]
    assert doc["write_files"][-1] == {
        "path": wf.path, "content": wf.content, "permissions": "0640", "owner": wf.owner,
    }  # fmt: skip
    want_run = [list(c) if isinstance(c, tuple) else c for c in ci.runcmd]
    assert doc["runcmd"][len(service.mounts) :] == want_run
    # The peer list's and the secrets' boot commands first, then the user's.
    assert doc["bootcmd"][0] == hosts.boot_command(service)
    assert doc["bootcmd"][2:] == [list(c) if isinstance(c, tuple) else c for c in ci.bootcmd]
    files = {f["path"]: f["content"] for f in doc["write_files"][:-1]}
    if service.environment:
        profile = files["/etc/profile.d/holos-environment.sh"]
        names = " ".join(f'"${k}"' for k, _ in service.environment)
        got = bash_words(bash, profile + f"\nprintf '%s\\0' {names}")
        assert got == [v for _, v in service.environment]


def check_secrets(output: Output, project: Any, sh: str, bash: str) -> None:
    """The guest's install command gets the target as one word; QEMU the host file."""
    service = project.services[0]
    doc = yaml.safe_load(output.files[PurePosixPath("camp/web-0/user-data")].data)
    argv = doc["bootcmd"][1]  # after the peer list's
    assert argv[:2] == ["sh", "-ec"]
    shims = "modprobe() { :; }\nsleep() { :; }\ninstall() { printf '%s\\0' \"$@\"; }\n"
    result = subprocess.run([sh, "-ec", shims + argv[2]], capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    words = result.stdout.decode().split("\0")[:-1]
    target = service.secrets[0].target
    assert words[-1] == target and words[3] == posixpath.dirname(target), words
    script = output.files[PurePosixPath("camp/web-0/launch.sh")].data.decode()
    command = script[script.index("exec qemu-system-x86_64") :]
    qemu = bash_words(bash, "printf '%s\\0' " + command.removeprefix("exec "))
    fw_cfg = [qemu[i + 1] for i, word in enumerate(qemu) if word == "-fw_cfg"][1]  # after peers
    secret = project.secret("s")
    assert qemu_opts(fw_cfg) == ["name=opt/holos/s0", f"file={host(secret.file)}"]
    # The launch script's own check names the same file (absent here: die prints it).
    check = _between(script, SECRETS, CONSOLE_LOG).split("\n", 1)[1]
    said = bash_words(bash, "die() { printf '%s\\0' \"$@\"; }\n" + check)
    assert said[-1] == host(secret.file), said


def check_fstab(output: Output, project: Any, sh: str, findmnt: str, tmp: Path) -> None:
    doc = yaml.safe_load(output.files[PurePosixPath("camp/web-0/user-data")].data)
    fstab = tmp / "fstab"
    fstab.write_text("")
    for command in doc["runcmd"][: len(project.services[0].mounts)]:
        step = re.search(r"\{ grep -qF .*? >> /etc/fstab; \}", command, re.S)
        assert step, command
        subprocess.run([sh, "-c", step[0].replace("/etc/fstab", str(fstab))], check=True)
    listed = subprocess.run(
        [findmnt, "--fstab", "--tab-file", str(fstab), "-n", "-P", "-o", "TARGET"],
        capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    targets = [m.target for m in project.services[0].mounts]
    got = [
        re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m[1], 16)), t)
        for t in re.findall(r'TARGET="(.*)"', listed)
    ]
    assert [g.encode("latin-1").decode("utf-8") for g in got] == targets


def deep_checks(output: Output, tmp: Path) -> None:
    """systemd-analyze verify and shellcheck: slow, so on a few examples only."""
    analyze = require_tool("systemd-analyze")
    shellcheck = require_tool("shellcheck")
    units = verify_root(output, tmp / "root", "camp")
    for unit in sorted(units.iterdir()):
        arg = str(unit) + (f":{unit.name.replace('@.', '@0.')}" if "@." in unit.name else "")
        result = subprocess.run(
            [analyze, "verify", "--recursive-errors=no", f"--root={tmp / 'root'}", arg],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert (result.returncode, result.stdout + result.stderr) == (0, ""), unit.name
    script = tmp / "launch.sh"
    script.write_bytes(output.files[PurePosixPath("camp/web-0/launch.sh")].data)
    # Warnings and errors: info notes such as SC2016 ("expressions don't expand in single
    # quotes") describe exactly the literal quoting a hostile value needs.
    result = subprocess.run(
        [shellcheck, "-S", "warning", str(script)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_hostile_values_compile_to_safe_output(tmp_path_factory: pytest.TempPathFactory) -> None:
    bash = require_tool("bash")
    sh = require_tool("sh")
    findmnt = require_tool("findmnt")
    counts = {"generated": 0, "compiled": 0}
    sample: list[tuple[dict[str, Any], Output]] = []

    @settings(settings.get_profile(PROFILE))
    @given(projects())
    def campaign(data: dict[str, Any]) -> None:
        counts["generated"] += 1
        result = compiled(data)
        if result is None:
            return
        output, project = result
        counts["compiled"] += 1
        tmp = tmp_path_factory.mktemp("camp")
        check_units(output)
        check_launch(output, project, bash)
        check_user_data(output, project, bash)
        check_secrets(output, project, sh, bash)
        check_fstab(output, project, sh, findmnt, tmp)
        if len(sample) < SAMPLE:
            sample.append((data, output))

    campaign()
    # The slow tools run after the campaign, on its first examples, so that a failure
    # here names its input (hypothesis would not replay it: the sample is taken once).
    for data, output in sample:
        try:
            deep_checks(output, tmp_path_factory.mktemp("deep"))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\ninput: {data!r}") from exc
    print(
        f"hostile campaign ({PROFILE}): {counts['generated']} examples generated, "
        f"{counts['compiled']} compiled and checked, {len(sample)} also through "
        "systemd-analyze verify and shellcheck"
    )
    # Most generated projects are valid: the campaign checks output, not only errors.
    assert counts["compiled"] >= counts["generated"] * 3 // 4
    assert len(sample) == SAMPLE
