"""`holosc ssh-config` and `holosc cp` against a real sshd on 127.0.0.1 standing in for a
guest's forwarded port (its host key pinned as holos-seed pins it), with real ssh and
tar: odd names (spaces, leading dashes, line breaks, quotes, `%`) reach the other side
unchanged and never become options. What a hostile guest can send is checked on the
host's side with crafted tar streams. tests/e2e/test_stack.py does both with a booted
guest."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from holosc.errors import RuntimeCommandError
from holosc.host import guestcopy
from tests.runtime.test_exec_pin import install

ODD = ["plain.txt", "with space", "-leading-dash", "line\nbreak", "quote'\"s", "100%", "$(x)"]


def holosc(env: dict[str, str], command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "holosc", command, "-p", "demo", *args],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path below `root` with its bytes (None for a directory)."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def odd_tree(root: Path) -> Path:
    root.mkdir(parents=True)
    for i, name in enumerate(ODD):
        (root / name).write_bytes(f"{i} {name}\n".encode())
    (root / "-sub dir").mkdir()
    (root / "-sub dir" / "inner\nfile").write_bytes(b"\x00binary\xff")
    (root / "-sub dir" / "link").symlink_to("inner\nfile")
    return root


def test_ssh_config_works_with_plain_ssh(tmp_path: Path, sshd: Any) -> None:
    """`ssh -F` with the printed block runs a command on the pinned host, from a state
    directory whose path needs quoting and `%` escaping in ssh_config."""
    state = tmp_path / "state dir %d"
    env = install(tmp_path, sshd, sshd.workdir / "host_key.pub")
    os.rename(env["HOLOSC_STATE_DIR"], state)
    env["HOLOSC_STATE_DIR"] = str(state)
    printed = holosc(env, "ssh-config")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("Host web-0.demo\n  HostName 127.0.0.1\n"), printed.stdout
    assert f'  IdentityFile "{state}/ssh/demo/id_ed25519"'.replace("%d", "%%d") in printed.stdout
    config = tmp_path / "ssh_config"
    config.write_text(printed.stdout)
    ran = subprocess.run(
        ["ssh", "-F", str(config), "web-0.demo", "echo", "via-ssh-config"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (ran.returncode, ran.stdout) == (0, "via-ssh-config\n"), ran.stderr
    # Another host key on the port: the pin holds.
    (state / "instances" / "demo" / "web-0" / "known_hosts").write_text(
        "web-0.demo.holos ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIHVbFm3xAyGk7kNcz+0bUCa7q1fx1yZ4ElwqznGG4ISL\n"
    )
    refused = subprocess.run(
        ["ssh", "-F", str(config), "web-0.demo", "true"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert refused.returncode == 255 and "Host key verification failed" in refused.stderr


def test_ansible_inventory_carries_the_same_options(tmp_path: Path, sshd: Any) -> None:
    """The inventory's ssh arguments, split as Ansible splits them, run a command."""
    env = install(tmp_path, sshd, sshd.workdir / "host_key.pub")
    printed = holosc(env, "ssh-config", "--ansible", "web")
    assert printed.returncode == 0, printed.stderr
    host = yaml.safe_load(printed.stdout)["all"]["children"]["web"]["hosts"]["web-0.demo"]
    assert (host["ansible_host"], host["ansible_port"]) == ("127.0.0.1", sshd.port)
    import shlex

    argv = ["ssh", *shlex.split(host["ansible_ssh_common_args"]), "-p", str(host["ansible_port"])]
    ran = subprocess.run(
        [*argv, "--", f"{host['ansible_user']}@{host['ansible_host']}", "echo", "ansible"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (ran.returncode, ran.stdout) == (0, "ansible\n"), ran.stderr


def test_top_lists_the_guests_processes(tmp_path: Path, sshd: Any) -> None:
    env = install(tmp_path, sshd, sshd.workdir / "host_key.pub")
    result = holosc(env, "top", "web")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "web-0" and lines[1].split()[:3] == ["UID", "PID", "PPID"], lines[:2]
    assert any("sshd" in line for line in lines), result.stdout  # the "guest" runs sshd


def test_ssh_config_names_unknown_targets(tmp_path: Path, sshd: Any) -> None:
    env = install(tmp_path, sshd, sshd.workdir / "host_key.pub")
    result = holosc(env, "ssh-config", "web", "nope", "db-3")
    assert result.returncode == 5 and "nope, db-3" in result.stderr, result.stderr


def test_cp_round_trips_a_directory_with_odd_names(tmp_path: Path, sshd: Any) -> None:
    env = install(tmp_path, sshd, sshd.workdir / "host_key.pub")
    source = odd_tree(tmp_path / "src" / "-odd dir\nname")
    guest = tmp_path / "guest side"
    guest.mkdir()
    up = holosc(env, "cp", "--", str(source), f"web-0:{guest}")  # into an existing directory
    assert up.returncode == 0, up.stderr
    assert tree(guest / source.name) == tree(source)
    assert os.readlink(guest / source.name / "-sub dir" / "link") == "inner\nfile"
    back = tmp_path / "back"
    down = holosc(env, "cp", f"web-0:{guest}/{source.name}/", str(back))  # as a new name
    assert down.returncode == 0, down.stderr
    assert tree(back) == tree(source)
    assert "copied" in down.stderr
    # Again onto the existing directory: the copy lands inside it, as docker cp does.
    again = holosc(env, "cp", f"web-0:{guest}/{source.name}", str(back))
    assert again.returncode == 0, again.stderr
    assert tree(back / source.name) == tree(source)


def test_cp_copies_single_files_both_ways(tmp_path: Path, sshd: Any) -> None:
    env = install(tmp_path, sshd, sshd.workdir / "host_key.pub")
    src = tmp_path / "-f one"
    src.write_bytes(b"payload\n")
    src.chmod(0o640)
    remote = tmp_path / "remote\nname"
    assert holosc(env, "cp", "--", str(src), f"web-0:{remote}").returncode == 0
    assert remote.read_bytes() == b"payload\n" and remote.stat().st_mode & 0o777 == 0o640
    local = tmp_path / "local"
    local.mkdir()
    result = holosc(env, "cp", f"web-0:{remote}", str(local))
    assert result.returncode == 0, result.stderr
    assert (local / remote.name).read_bytes() == b"payload\n"
    missing = holosc(env, "cp", f"web-0:{tmp_path}/absent", str(local))
    assert missing.returncode == 5 and "absent" in missing.stderr, missing.stderr
    both = holosc(env, "cp", str(src), str(local))
    assert both.returncode == 2 and "exactly one of SOURCE and DEST" in both.stderr


def test_operands() -> None:
    assert guestcopy.parse("web-0:/var/log") == guestcopy.Operand("web-0", "/var/log")
    assert guestcopy.parse("web-0:") == guestcopy.Operand("web-0", "")
    assert guestcopy.parse("./web-0:x") == guestcopy.Operand(None, "./web-0:x")
    assert guestcopy.parse("web:x") == guestcopy.Operand(None, "web:x")  # not an instance
    assert guestcopy.parse("/a/web-0:x") == guestcopy.Operand(None, "/a/web-0:x")
    assert guestcopy.remote_split("/var/log/") == ("/var", "log")
    assert guestcopy.remote_split("notes") == (".", "notes")
    with pytest.raises(RuntimeCommandError, match="root directory"):
        guestcopy.remote_split("//")


def _stream(*members: tuple[str, str, str]) -> io.BytesIO:
    """A tar stream of (name, type, data or link target) as a hostile guest could send."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, body in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(body)
                info.mode = 0o4777
                tar.addfile(info, io.BytesIO(body.encode()))
            else:
                info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                             "hard": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}[kind]  # fmt: skip
                info.linkname = body
                tar.addfile(info)
    data.seek(0)
    return data


@pytest.mark.parametrize(
    "members",
    [
        [("./x", "dir", ""), ("/etc/evil", "file", "a")],
        [("./x", "dir", ""), ("./x/../../evil", "file", "a")],
        [("./y", "file", "a")],  # not the name asked for
        [("./x", "dir", ""), ("./x/l", "sym", "/"), ("./x/l/evil", "file", "a")],
        [("./x", "sym", ".."), ("./x/evil", "file", "a")],
        [("./x", "dir", ""), ("./x/h", "hard", "./x/../../evil")],
    ],
)
def test_a_hostile_stream_writes_nothing_outside(tmp_path: Path, members: list[Any]) -> None:
    dest = tmp_path / "in" / "dest"
    dest.parent.mkdir()
    with pytest.raises(RuntimeCommandError, match="outside"):
        guestcopy._extract(_stream(*members), "x", dest)
    outside = {p.name for p in tmp_path.rglob("*")} - {"in", "dest", "l", "x"}
    assert "evil" not in outside and not (tmp_path / "evil").exists()


def test_a_stream_loses_set_id_bits_and_devices(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    guestcopy._extract(
        _stream(("./x", "dir", ""), ("./x/f", "file", "ok"), ("./x/p", "fifo", "")), "x", dest
    )
    assert (dest / "f").stat().st_mode & 0o7777 == 0o777
    assert (dest / "f").stat().st_uid == os.geteuid()
    assert not (dest / "p").exists()
