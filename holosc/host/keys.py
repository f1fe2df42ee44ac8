"""The project's SSH key pair (generated once in the state directory, never in the output)
and the ssh options that pin a guest's host key.

Nothing of the key is compiled: holos-seed hands the public key to each guest when it
starts (as vendor-data); the private key stays 0600 for the health probe and `holosc exec`.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from holos_runtime import health

from holosc.core import layout, names
from holosc.emit.write import write_atomic
from holosc.errors import Diagnostic, RuntimeCommandError
from holosc.host import diskspace, run


def key_path(state_root: Path, project: str) -> Path:
    return layout.key(state_root, names.check("project", project))


def ensure_key(path: Path, project: str) -> str:
    """The public key for private key `path`, generating the pair when both are missing.

    The pair is generated in a temporary directory beside `path` and renamed into place,
    so a failure (a full disk) never leaves a partial key behind; an empty private key
    with no public key (left by an older holosc on a full disk) is generated again.

    :raises RuntimeCommandError: when ssh-keygen is missing or fails, or the key is unreadable.
    :raises RuntimeCommandError: when the filesystem is full.
    """
    pub = path.with_name(path.name + ".pub")
    if not pub.exists() and (not path.exists() or path.stat().st_size == 0):
        try:
            _generate(path, project)
        except OSError as exc:
            if diskspace.is_full(exc):
                raise diskspace.full_error(path.parent, "the project's SSH key", KEY_BYTES) from exc
            raise _error(f"cannot write the SSH key {path}: {exc.strerror}") from exc
    try:
        return pub.read_text("utf-8").strip()
    except OSError as exc:
        raise _error(
            f"cannot read public key {pub}: {exc}",
            "the public key must sit beside the private key as KEY.pub",
        ) from exc


KEY_BYTES = 4096  # an ed25519 pair with its directory, rounded up to a block


def _generate(path: Path, project: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        argv = [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            layout.key_comment(project),
            "-f",
            str(tmp / "key"),
        ]
        result = run.run(argv, check=False, timeout=30, hint="install openssh-client")
        if result.returncode != 0:
            stderr = result.stderr
            if "No space left" in stderr or "quota" in stderr.lower():
                raise OSError(errno.ENOSPC, stderr.strip())
            raise _error(f"ssh-keygen failed: {stderr}")
        (tmp / "key").chmod(0o600)
        # The public key last: its presence means the pair is complete.
        os.replace(tmp / "key", path)
        os.replace(tmp / "key.pub", path.with_name(path.name + ".pub"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pinned_host_key(known_hosts: Path, alias: str) -> list[str]:
    """ssh options that accept only the host key pinned for `alias` in `known_hosts`:
    holos-health's own (holos_runtime.health), so `exec` and the probe pin alike.

    :raises RuntimeCommandError: for a path ssh's option cannot carry.
    """
    try:
        return health.pinned_host_key(str(known_hosts), alias)
    except ValueError as exc:
        raise _error(str(exc)) from exc


def _error(message: str, hint: str | None = None) -> RuntimeCommandError:
    # A host problem (ssh-keygen, the state directory), not an invalid holos.yaml.
    return RuntimeCommandError(message, [Diagnostic(message, file="ssh key", hint=hint)])


def adopt_key(private: Path, state_root: Path, project: str) -> None:
    """Copy a given key pair to where the units look for it (%S/holos/ssh/<project>/)."""
    dest = key_path(state_root, project)
    if private.resolve() == dest.resolve() or not private.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        for src, target, mode in (
            (private, dest, 0o600),
            (private.with_name(private.name + ".pub"), dest.with_name(dest.name + ".pub"), 0o644),
        ):
            write_atomic(target, src.read_bytes(), mode)
    except OSError as exc:
        if diskspace.is_full(exc):
            raise diskspace.full_error(dest.parent, "the project's SSH key", KEY_BYTES) from exc
        raise
