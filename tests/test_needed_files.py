"""Every file the units read at start is treated alike (issue 24, item 5): a local image,
vm.kernel and vm.initrd, a ROM file, a bind-mount source, a secret's file. Missing, each
is a positioned warning for validate and build (the output may run elsewhere) and a
positioned error for `up`, which then starts and writes nothing."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_holosc

PROJECT = """\
name: files
secrets:
  token: {file: ./token.txt}
services:
  web:
    image: ./disk.qcow2
    vm:
      kernel: ./vmlinuz-typo
      initrd: ./initrd.img
    volumes: ["./site:/srv"]
    secrets: [token]
"""


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "p"
    project.mkdir()
    (project / "holos.yaml").write_text(PROJECT)
    (project / "disk.qcow2").write_bytes(b"")
    (project / "initrd.img").write_bytes(b"")
    return project


def test_missing_files_warn_at_validate_and_stop_up(tmp_path: Path) -> None:
    project = _project(tmp_path)
    hint = "(hint: the VM cannot start until it does: holosc up refuses to start the project)"
    validate = run_holosc("validate", cwd=project)
    assert validate.returncode == 0, validate.stderr
    assert validate.stderr.splitlines() == [
        f"holos.yaml:3:17: warning: secrets.token.file: secret token's file './token.txt' "
        f"does not exist (yet) {hint}",
        f"holos.yaml:8:15: warning: services.web.vm.kernel: vm.kernel './vmlinuz-typo' "
        f"does not exist (yet) {hint}",
        f"holos.yaml:10:15: warning: services.web.volumes[0]: bind-mount source './site' "
        f"does not exist (yet) {hint}",
    ]
    # A directory where a file belongs is an error everywhere.
    (project / "vmlinuz-typo").mkdir()
    wrong = run_holosc("validate", cwd=project)
    assert wrong.returncode == 3
    assert "vm.kernel './vmlinuz-typo' is a directory, not a file" in wrong.stderr
    (project / "vmlinuz-typo").rmdir()

    root = tmp_path / "host"
    env = {
        "HOLOSC_SYSTEMCTL": "sh -c 'echo running' sh",  # a manager that answers, nothing more
        "HOLOSC_UNIT_DIR": str(root / "units"),
        "HOLOSC_CONFIG_DIR": str(root / "config"),
        "HOLOSC_STATE_DIR": str(root / "state"),
        "HOLOSC_RUNTIME_DIR": str(root / "run"),
    }
    up = run_holosc("up", cwd=project, env=env)
    assert up.returncode == 3, up.stderr
    fix = "(hint: create it, or correct the path)"
    assert up.stderr.splitlines() == [
        f"holos.yaml:3:17: error: secrets.token.file: secret token's file './token.txt' "
        f"does not exist (yet) {fix}",
        f"holos.yaml:8:15: error: services.web.vm.kernel: vm.kernel './vmlinuz-typo' "
        f"does not exist (yet) {fix}",
        f"holos.yaml:10:15: error: services.web.volumes[0]: bind-mount source './site' "
        f"does not exist (yet) {fix}",
        "holosc: 3 errors",
    ]
    assert not (root / "units").exists() and not (root / "config").exists()


def test_a_path_no_file_can_have_is_missing_not_a_crash(tmp_path: Path) -> None:
    """A name longer than NAME_MAX (or a symlink loop) makes Path.is_dir() raise: found by
    the hostile campaign as an internal error."""
    project = _project(tmp_path)
    (project / "loop").symlink_to("loop")
    text = PROJECT.replace("./vmlinuz-typo", "/" + "0" * 300).replace("./initrd.img", "./loop")
    (project / "holos.yaml").write_text(text)
    validate = run_holosc("validate", cwd=project)
    assert validate.returncode == 0, validate.stderr
    assert "services.web.vm.kernel: vm.kernel '/000" in validate.stderr, validate.stderr
    assert "services.web.vm.initrd: vm.initrd './loop' does not exist" in validate.stderr
