"""`environment:` reaches SSH sessions (holosc exec, healthchecks) and login shells byte
for byte: the compiled sshd drop-in is read by a real sshd, the profile.d file by bash.

No guest boots here: the files are what cloud-init writes verbatim (write_files), and the
programs reading them are the same OpenSSH and bash as in the Debian guest.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path, PurePosixPath

import yaml

from holosc.core.compiler import compile_project
from holosc.core.render.guestenv import PROFILE, SSHD_DROPIN
from holosc.core.validate.checks import build_project
from tests.conftest import require_tool
from tests.runtime.conftest import Sshd, free_port, run, wait_listening

HOSTILE = [
    "plain",
    "two words",
    'say "hi"',
    "it's",
    "back\\slash",
    "trailing\\",
    '\\"',
    "# not a comment",
    "a#b",
    "$HOME and ${PATH} and `id`",
    "%i %t 100%",
    "tab\there",
    " leading and trailing ",
    "-oProxyCommand=touch /tmp/x",
    "key=value=more",
    "ünïcødé ✓",
    "",
]


def _random_values(n: int) -> list[str]:
    alphabet = "aZ09 \t\"'\\#$%`=;&|<>(){}*?!~-_.,/ü"
    rng = random.Random(20261129)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(n)]


def _compiled_files(values: dict[str, str]) -> dict[str, str]:
    from holosc.load.files import HostFiles
    from holosc.load.parse import load_text

    # `$$` is a literal `$` in holos.yaml (interpolation), as in compose.
    env = yaml.safe_dump(values, allow_unicode=True, default_flow_style=False).replace("$", "$$")
    text = "name: envt\nservices:\n  app:\n    image: debian:12\n    environment:\n"
    text += "".join("      " + line + "\n" for line in env.splitlines())
    project = build_project(load_text(text, directory=Path("."), environ={}), HostFiles()).project
    user_data = compile_project(project).files[PurePosixPath("envt/app-0/user-data")]
    doc = yaml.safe_load(user_data.data.decode())
    return {f["path"]: f["content"] for f in doc["write_files"]}


def _session_env(sshd: Sshd, dropin: Path) -> dict[str, str]:
    """The environment a session of a real sshd that includes `dropin` gets."""
    d = sshd.workdir
    port = free_port()
    config = dropin.parent / "sshd_config"
    base = (d / "sshd_config").read_text().splitlines()
    config.write_text(
        "\n".join(line for line in base if not line.startswith(("Port ", "PidFile ")))
        + f"\nPort {port}\nPidFile {dropin.parent}/sshd.pid\nInclude {dropin}\n"
    )
    proc = subprocess.Popen(
        [require_tool("sshd"), "-D", "-e", "-f", str(config)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_listening(proc, port, lambda: proc.stdout.read() if proc.stdout else "")
        out = run(
            [
                require_tool("ssh"), "-i", str(sshd.key), "-p", str(port),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "--", f"{sshd.user}@127.0.0.1", "env -0",
            ],
        )  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return dict(item.split("=", 1) for item in out.stdout.split("\0") if "=" in item)


def test_environment_reaches_ssh_sessions_and_login_shells(sshd: Sshd, tmp_path: Path) -> None:
    values = {f"V{i}": v for i, v in enumerate(HOSTILE + _random_values(40))}
    files = _compiled_files(values)
    dropin = tmp_path / "50-holos-environment.conf"
    dropin.write_text(files[SSHD_DROPIN])
    seen = _session_env(sshd, dropin)
    assert {k: seen.get(k) for k in values} == values

    profile = tmp_path / "holos-environment.sh"
    profile.write_text(files[PROFILE])
    shell = run(["bash", "-c", f". {profile} && env -0"], env={})
    exported = dict(i.split("=", 1) for i in shell.stdout.split("\0") if "=" in i)
    assert {k: exported.get(k) for k in values} == values
