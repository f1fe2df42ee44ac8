"""Whether holosc may write into a directory: who made it, and who else can change it.

`build -o DIR`, `export -o DIR` and `import -o FILE` write where the user says, often
in shared places (/tmp). A directory another user made first, or can write, lets them
swap what holosc writes there (a launch.sh that root later runs) or, before the write,
the directory itself. So every directory from / down to the one holosc writes into must:

- belong to a trusted user: root, the caller, and, when the caller is root under sudo,
  the user who ran sudo (SUDO_UID, as git's safe.directory accepts it);
- be writable by no one else: not group- or world-writable, except with the sticky bit
  (/tmp), where others may add entries but cannot rename or remove ours; the directory
  holosc writes into must not be writable by others even then.

A symlink on the way is followed only when a trusted user owns it. Missing directories
are created by the caller, then checked like the others. Access control lists are not
read: a directory made writable to others by an ACL alone passes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import stat
from pathlib import Path

from holosc.errors import Diagnostic, EmitError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
MAX_LINKS = 40  # symlinks followed on one path, as the kernel's ELOOP bound
WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


def trusted_owners() -> frozenset[int]:
    euid = os.geteuid()
    owners = {0, euid}
    sudo_uid = os.environ.get("SUDO_UID", "")
    if euid == 0 and sudo_uid.isdigit():
        owners.add(int(sudo_uid))
    return frozenset(owners)


def is_trusted(mode: int, uid: int, *, shared_ok: bool) -> bool:
    """Whether an entry with this lstat mode and owner may be used: a trusted owner, and
    writable by no one else (sticky directories only when `shared_ok`)."""
    if uid not in trusted_owners():
        return False
    sticky = stat.S_ISDIR(mode) and mode & stat.S_ISVTX
    return not mode & WRITABLE_BY_OTHERS or bool(shared_ok and sticky)


def open_trusted_dir(
    path: Path, *, create: bool = False, shared_ok: bool = False, shown: Path | None = None
) -> int:
    """An fd of the directory `path` (made with its parents when `create`), after
    checking every directory from / down to it; `shared_ok` accepts a sticky shared
    directory (/tmp) at the end too, for callers that only add entries of their own
    there. Errors name `shown` (what the user asked for). The caller closes the fd.

    :raises EmitError: when a directory on the way is another user's or writable by
        others, a symlink on the way is another user's, or the path cannot be opened.
    """
    walk = _Walk(shown or path, path, create)
    try:
        walk.run(shared_ok)
    except OSError as exc:
        walk.close()
        message = f"cannot write into {path}: {exc.strerror or exc}"
        raise EmitError(
            f"cannot write {shown or path}", [Diagnostic(message, file=str(shown or path))]
        ) from exc
    except BaseException:
        walk.close()
        raise
    return walk.fd


def check_dir(path: Path, *, create: bool = False, shared_ok: bool = False) -> None:
    """open_trusted_dir for callers that go on by path (nobody else can change it now).

    :raises EmitError: as open_trusted_dir.
    """
    os.close(open_trusted_dir(path, create=create, shared_ok=shared_ok))


class _Walk:
    """One component at a time from /, each directory opened with O_NOFOLLOW and fstat'ed
    through its fd (what is checked is what is used)."""

    def __init__(self, shown: Path, path: Path, create: bool) -> None:
        self.shown, self.target, self.create = shown, path, create
        self.fd = os.open("/", _DIR | os.O_NOFOLLOW)
        self.where = "/"

    def run(self, shared_ok: bool) -> None:
        todo, links = [p for p in os.path.abspath(self.target).split("/") if p], 0
        self._check("/", shared_ok or bool(todo))
        while todo:
            part = todo.pop(0)
            st = self._lstat(part)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
                if st.st_uid not in trusted_owners():
                    here = os.path.join(self.where, part)
                    message = f"{here} is a symlink {_owned_by(st.st_uid)}"
                    raise _refuse(self.shown, message, _HINT_OWNER)
                target = os.readlink(part, dir_fd=self.fd)
                if target.startswith("/"):
                    self._enter("/", "/")
                todo[:0] = [p for p in target.split("/") if p]
                continue
            self._enter(part, os.path.normpath(os.path.join(self.where, part)))
            self._check(self.where, shared_ok or bool(todo))

    def _lstat(self, name: str) -> os.stat_result:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            if not self.create:
                raise
        with contextlib.suppress(FileExistsError):  # made meanwhile: checked like any
            os.mkdir(name, 0o777, dir_fd=self.fd)
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def _enter(self, name: str, where: str) -> None:
        sub = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=self.fd)
        os.close(self.fd)
        self.fd, self.where = sub, where

    def _check(self, where: str, shared_ok: bool) -> None:
        st = os.fstat(self.fd)
        _check(st.st_mode, st.st_uid, where, self.shown, shared_ok=shared_ok)

    def close(self) -> None:
        os.close(self.fd)


def check_entry(mode: int, uid: int, where: str, path: Path) -> None:
    """Refuse a directory holosc would write into (or adopt) that is another user's or
    writable by others, sticky or not.

    :raises EmitError: as open_trusted_dir.
    """
    _check(mode, uid, where, path, shared_ok=False)


def _check(mode: int, uid: int, where: str, path: Path, *, shared_ok: bool) -> None:
    if uid not in trusted_owners():
        raise _refuse(path, f"{where} is {_owned_by(uid)}", _HINT_OWNER)
    if not is_trusted(mode, uid, shared_ok=shared_ok):
        raise _refuse(
            path,
            f"{where} is writable by other users (mode {stat.S_IMODE(mode):04o})",
            f"chmod go-w {where}, or choose a directory only you can write (-o)",
        )


_HINT_OWNER = "remove it, or choose a directory that you or root made (-o)"


def _owned_by(uid: int) -> str:
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = "no user"
    return f"owned by uid {uid} ({name}), not by you or root"


def _refuse(path: Path, message: str, hint: str) -> EmitError:
    return EmitError(
        f"cannot write {path}",
        [
            Diagnostic(
                f"{message}: holosc writes only where no other user can", file=str(path), hint=hint
            )
        ],
    )
