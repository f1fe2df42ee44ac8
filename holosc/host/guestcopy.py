"""`holosc cp`: files and directories between this host and a guest, as a tar stream over
the same SSH as `holosc exec` (project key, pinned host key).

No value reaches a shell or an option: the guest runs a fixed script (`sh -c SCRIPT cp
ARG...`, every word quoted by escape.shell_command) that takes the paths as positional
parameters and quotes them itself; on the host, Python's tarfile reads and writes the
stream. What the guest sends is untrusted: every member must stay below the destination
(no absolute name, no `..`, no write through a link it made), only files, directories
and links are written, with the host user as owner and no set-id bits.

Paths follow `docker cp`: a destination that is an existing directory receives the
source under its own name; otherwise the source is copied as the destination. A
directory copied onto an existing one merges into it. The guest side runs as the
instance's login user.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

from holosc.core import names
from holosc.errors import Diagnostic, RuntimeCommandError
from holosc.host import run

SSH_HINT = "install openssh-client"

# The guest's side of an upload: $1 destination, $2 the source's name, $3 dir|file,
# $4 the file's mode. A directory arrives as a tar stream of its contents, a file as
# its bytes.
RECEIVE = r"""set -eu
dest=$1
if [ -d "$dest" ]; then dest=$dest/$2; fi
if [ "$3" = dir ]; then
  mkdir -p -- "$dest"
  cd -- "$dest"
  exec tar -xf -
fi
cat > "$dest"
chmod -- "$4" "$dest"
"""
# The guest's side of a download: $1 the directory holding the source, $2 its name.
# `./NAME`: a name that starts with `-` is no option of tar's.
SEND = r"""set -eu
cd -- "$1"
exec tar -cf - "./$2"
"""


@dataclasses.dataclass(frozen=True)
class Operand:
    """One side of `cp`: `instance` is None for a path on this host."""

    instance: str | None
    path: str


def parse(text: str) -> Operand:
    """`web-0:/var/log` names a guest's path; anything else is a host path (a host path
    that looks like one is written `./web-0:x`, as with docker cp)."""
    head, colon, tail = text.partition(":")
    if colon and "/" not in head:
        try:
            return Operand(names.check_instance(head, "the command line"), tail)
        except names.NameError_:
            pass
    return Operand(None, text)


def remote_split(path: str) -> tuple[str, str]:
    """(directory, name) of a guest path; `` is the login user's home."""
    stripped = path.rstrip("/") or ("/" if path.startswith("/") else ".")
    if stripped == "/":
        raise error(f"cannot copy the guest's root directory {path!r}", "name a directory in it")
    parent, name = posixpath.split(stripped)
    return parent or ".", name


Ssh = Callable[[list[str]], list[str]]  # remote argv -> the ssh argv that runs it


def upload(ssh: Ssh, source: Path, dest: str) -> int:
    """Copy host path `source` to guest path `dest`; returns the bytes sent.

    :raises RuntimeCommandError: when the source cannot be read or the guest refuses.
    """
    try:
        info = source.stat()  # a symlink given as the source is followed
    except OSError as exc:
        raise error(f"cannot read {source}: {exc.strerror}") from exc
    kind = "dir" if source.is_dir() else "file"
    name = source.resolve().name if source.name in ("", ".", "..") else source.name
    argv = ssh(["sh", "-c", RECEIVE, "holos-cp", dest or ".", name, kind, _mode(info.st_mode)])
    with run.streaming(argv, hint=SSH_HINT, stdin=subprocess.PIPE) as stream:
        proc = stream.proc
        assert proc.stdin is not None
        sent = _Counter(proc.stdin)
        try:
            if kind == "dir":
                with tarfile.open(
                    fileobj=cast(IO[bytes], sent), mode="w|", format=tarfile.PAX_FORMAT
                ) as tar:
                    tar.add(source.resolve(), arcname=".", filter=_as_root)
            else:
                with source.open("rb") as data:
                    shutil.copyfileobj(data, sent)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the guest stopped reading: its exit status and stderr say why
        except OSError as exc:
            proc.kill()
            raise error(f"cannot read {source}: {exc.strerror}") from exc
        stream.finish("upload")
    return sent.count


def download(ssh: Ssh, source: str, dest: Path) -> int:
    """Copy guest path `source` to host path `dest`; returns the bytes written.

    :raises RuntimeCommandError: when the guest cannot send it or sends an unsafe member.
    """
    parent, name = remote_split(source)
    target = dest / name if dest.is_dir() else dest
    if not target.parent.is_dir():
        raise error(f"{target.parent} is not a directory on this host")
    argv = ssh(["sh", "-c", SEND, "holos-cp", parent, name])
    with run.streaming(argv, hint=SSH_HINT, stdout=subprocess.PIPE) as stream:
        proc = stream.proc
        assert proc.stdout is not None
        try:
            written = _extract(proc.stdout, name, target.parent.resolve() / target.name)
        except tarfile.TarError as exc:
            # The guest's own error first (a missing source sends an empty stream).
            stream.finish("download")
            raise error(f"the guest sent no valid tar stream ({exc})") from exc
        except BaseException:
            proc.kill()
            raise
        stream.finish("download")
    return written


def _extract(stream: IO[bytes], name: str, target: Path) -> int:
    """Write the members of `stream` (all below `./NAME`) as `target` (absolute, its
    directory resolved) and below it."""
    written = 0
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            rel = _member_path(member.name, name)
            if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                continue  # devices and FIFOs: nothing a copy should make
            dest = target if rel == "." else target / rel
            _check_below(dest, target)
            if dest != target and dest.is_symlink():
                dest.unlink()  # never write through a link an earlier member made
            if member.islnk():
                link = _member_path(member.linkname, name)
                _check_below(target if link == "." else target / link, target)
                member.linkname = target.name if link == "." else f"{target.name}/{link}"
            member.name = target.name if rel == "." else f"{target.name}/{rel}"
            member.mode &= 0o777
            member.uid, member.gid, member.uname, member.gname = os.geteuid(), os.getegid(), "", ""
            tar.extract(member, target.parent, **_TRUSTED)
            written += member.size if member.isfile() else 0
    return written


# Our own checks above replace tarfile's filters (Python 3.11.4 and later have them; the
# Debian 12 Python does not): tell a Python that has them not to warn.
_TRUSTED: dict[str, Any] = {"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}


def _member_path(member: str, name: str) -> str:
    """The member's path relative to the copied `./NAME`.

    :raises RuntimeCommandError: for a member outside it (absolute, `..`, another name).
    """
    path = posixpath.normpath(member)
    top = posixpath.normpath(name)
    rel = posixpath.relpath(path, top) if not path.startswith("/") else ".."
    if rel == ".." or rel.startswith("../") or path.startswith("/"):
        raise error(f"the guest sent a member outside {name!r}: {member!r}")
    return rel


def _check_below(dest: Path, root: Path) -> None:
    """`dest` (below `root`, both absolute) is reached without leaving `root`: no directory
    on the way is a link (to elsewhere) that an earlier member made."""
    if dest != root and not Path(os.path.realpath(dest.parent)).is_relative_to(root):
        raise error(f"the guest sent a member that leads outside {root} through a link: {dest}")


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Members owned by root, as `docker cp` makes them (only a root login applies it)."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _mode(mode: int) -> str:
    return f"{mode & 0o777:o}"


class _Counter:
    """A write-only stream that counts what passes through."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.count = 0

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()


def error(message: str, hint: str | None = None) -> RuntimeCommandError:
    return RuntimeCommandError(message, [Diagnostic(message, file="holosc cp", hint=hint)])
