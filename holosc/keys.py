"""The project's SSH key pair (generated once in the state directory, never in the output)
and the ssh options that pin a guest's host key.

Nothing of the key is compiled: holos-seed hands the public key to each guest when it
starts (as vendor-data); the private key stays 0600 for the health probe and `holosc exec`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from holosc.errors import Diagnostic, HolosError


def key_path(state_root: Path, project: str) -> Path:
    return state_root / "ssh" / project / "id_ed25519"


def ensure_key(path: Path, project: str) -> str:
    """The public key for private key `path`, generating the pair when both are missing.

    :raises HolosError: when ssh-keygen is missing or fails, or the key is unreadable.
    """
    pub = path.with_name(path.name + ".pub")
    if not pub.exists() and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        argv = [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            f"holos-{project}",
            "-f",
            str(path),
        ]
        try:
            subprocess.run(
                argv, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=30
            )
        except FileNotFoundError as exc:
            raise _error("ssh-keygen not found; install openssh-client") from exc
        except subprocess.CalledProcessError as exc:
            raise _error(f"ssh-keygen failed: {exc.stderr.decode(errors='replace')}") from exc
        path.chmod(0o600)
    try:
        return pub.read_text("utf-8").strip()
    except OSError as exc:
        raise _error(
            f"cannot read public key {pub}: {exc}",
            "the public key must sit beside the private key as KEY.pub",
        ) from exc


def pinned_host_key(known_hosts: Path, alias: str) -> list[str]:
    """ssh options that accept only the host key pinned for `alias` in `known_hosts`.

    The same options as holos_runtime.health.pinned_host_key (the helpers never import
    the compiler). ssh splits UserKnownHostsFile at whitespace and expands `%` tokens in
    it, so the path is quoted and its `%` doubled.
    """
    text = str(known_hosts)
    if '"' in text:
        raise _error(f"known_hosts path must not contain a double quote: {text!r}")
    quoted = '"' + text.replace("%", "%%") + '"'
    return [
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={quoted}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"HostKeyAlias={alias}",
    ]


def _error(message: str, hint: str | None = None) -> HolosError:
    return HolosError(message, [Diagnostic(message, file="ssh key", hint=hint)])


def adopt_key(private: Path, state_root: Path, project: str) -> None:
    """Copy a given key pair to where the units look for it (%S/holos/ssh/<project>/)."""
    dest = key_path(state_root, project)
    if private.resolve() == dest.resolve() or not private.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for src, target, mode in (
        (private, dest, 0o600),
        (private.with_name(private.name + ".pub"), dest.with_name(dest.name + ".pub"), 0o644),
    ):
        target.write_bytes(src.read_bytes())
        target.chmod(mode)
