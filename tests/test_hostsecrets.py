"""`holosc up` writes environment secrets to the runtime directory, privately, and `down`
removes them; file secrets need nothing on the host side."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from holosc.core.model import Project, Secret
from holosc.errors import RuntimeCommandError
from holosc.host.hostsecrets import remove_environment_secrets, write_environment_secrets


def project(*secrets: Secret) -> Project:
    return Project("p", (), secrets=secrets)


def test_written_private_and_removed(tmp_path: Path) -> None:
    p = project(Secret("token", environment="TOKEN"), Secret("pw", file="./pw.txt"))
    assert write_environment_secrets(p, tmp_path, {"TOKEN": "abc\n"}) == ["token"]
    written = tmp_path / "p" / "secrets" / "token"
    assert written.read_bytes() == b"abc\n"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700
    assert [e.name for e in written.parent.iterdir()] == ["token"]  # no file secret copied
    write_environment_secrets(p, tmp_path, {"TOKEN": "new"})  # replaced, not appended
    assert written.read_bytes() == b"new"
    remove_environment_secrets(tmp_path, "p")
    assert not written.parent.exists()


def test_unset_variable_is_a_clear_error(tmp_path: Path) -> None:
    p = project(Secret("token", environment="TOKEN"))
    with pytest.raises(RuntimeCommandError, match=r"secret token needs \$TOKEN"):
        write_environment_secrets(p, tmp_path, {})
    assert not (tmp_path / "p").exists()


def test_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "p" / "secrets")
    with pytest.raises(RuntimeCommandError, match="is not a directory of this user"):
        write_environment_secrets(project(Secret("t", environment="T")), tmp_path, {"T": "x"})
    assert list(elsewhere.iterdir()) == []
    remove_environment_secrets(tmp_path, "p")  # never through the link
    assert elsewhere.is_dir()
