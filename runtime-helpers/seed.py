"""holos-seed: build an instance's NoCloud seed on the host that runs it, before QEMU starts.

Usage::

    holos-seed --instance NAME --seed-dir DIR --state DIR --key KEYFILE --alias ALIAS
               --out SEED.iso

The compiled output holds only host-independent, reviewable texts: ``user-data``,
``meta-data`` and ``network-config`` in ``--seed-dir``.  This helper (the unit's
``ExecStartPre=``) joins them with what belongs to this host:

* the project key pair ``--key`` (``%S/holos/ssh/<project>/id_ed25519``), generated
  here once if missing; its public key goes into the guest;
* the instance's SSH host key pair ``<--state>/ssh_host_ed25519_key``, generated once
  beside the instance's disk (and removed with it by ``holosc down``);
* ``<--state>/known_hosts``: the host public key under ``--alias``, the pin that
  ``holos-health`` and ``holosc exec`` check (``StrictHostKeyChecking=yes``).

The host material reaches the guest as NoCloud ``vendor-data``: a cloud-config with
``ssh_authorized_keys`` (for the default user, which user-data's ``user:`` names) and
``ssh_keys`` (the host key pair).  The seed ISO (volume ``cidata``) holds the three
committed texts byte for byte plus that vendor-data, and is written 0600 to ``--out``
(the runtime directory): it carries a private host key, so it never enters the output
directory.  Same inputs, same bytes: the ISO's timestamps are pinned.

Exit codes: 0 seed written, 1 error (message on stderr, the journal), 2 usage.
Imports only the standard library and pycdlib (the ISO writer).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

log = logging.getLogger("holos-seed")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

# The committed texts, in the order of the ISO, with their ISO 9660 level-1 names.
TEXTS = ("meta-data", "network-config", "user-data")
ISO_NAMES = {
    "user-data": "/USERDATA.;1",
    "meta-data": "/METADATA.;1",
    "network-config": "/NETWORKC.;1",
    "vendor-data": "/VENDORDA.;1",
}
HOST_KEY = "ssh_host_ed25519_key"
KNOWN_HOSTS = "known_hosts"
# 2000-01-01T00:00:00Z: pycdlib stamps records with time.time() via time.localtime().
SEED_EPOCH = 946684800.0


class SeedError(Exception):
    """A failure with a message for the journal."""


def ensure_keypair(private: Path, comment: str) -> str:
    """The public key of `private`, generating an ed25519 pair (0600, in a 0700 directory)
    when it is missing. Concurrent callers (replicas starting together) get one pair.

    :raises SeedError: when ssh-keygen is missing or fails, or the key is unreadable.
    """
    public = private.with_name(private.name + ".pub")
    private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(private.parent):
        if not private.exists():
            public.unlink(missing_ok=True)
            argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]
            try:
                subprocess.run(
                    [*argv, str(private.absolute())],
                    check=True,
                    capture_output=True,
                    stdin=subprocess.DEVNULL,
                    timeout=30,
                )
            except FileNotFoundError as exc:
                raise SeedError("ssh-keygen not found; install openssh-client") from exc
            except subprocess.CalledProcessError as exc:
                detail = exc.stderr.decode(errors="replace")
                raise SeedError(f"ssh-keygen failed: {detail}") from exc
            private.chmod(0o600)
    try:
        return public.read_text("utf-8").strip()
    except OSError as exc:
        raise SeedError(f"cannot read public key {public}: {exc}") from exc


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def fingerprint(public_key: str) -> str:
    """`ssh-keygen -l` style SHA256 fingerprint of an OpenSSH public key line."""
    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def vendor_data(project_key: str, host_private: str, host_public: str) -> str:
    """cloud-config merged under user-data. JSON is YAML: no YAML writer needed here.

    user-data never sets these keys, so cloud-init's merge (user-data wins per top-level
    key) keeps both; `ssh_authorized_keys` goes to the default user (user-data's `user:`).
    """
    doc = {
        "ssh_authorized_keys": [project_key],
        "ssh_keys": {"ed25519_private": host_private, "ed25519_public": host_public},
    }
    return "#cloud-config\n" + json.dumps(doc, indent=2, sort_keys=True) + "\n"


def build_iso(files: dict[str, bytes]) -> bytes:
    """An ISO 9660 image (label cidata) with Rock Ridge and Joliet names, byte-for-byte
    stable: pycdlib's clock is pinned and local time made UTC while it writes."""
    import pycdlib  # only here: the usage path stays fast

    saved = time.time, time.localtime
    time.time, time.localtime = (lambda: SEED_EPOCH), time.gmtime
    try:
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
        for name in sorted(files):
            data = files[name]
            iso.add_fp(
                io.BytesIO(data), len(data), ISO_NAMES[name], rr_name=name, joliet_path=f"/{name}"
            )
        out = io.BytesIO()
        iso.write_fp(out)
        iso.close()
    finally:
        time.time, time.localtime = saved
    return out.getvalue()


def write_private(target: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `target` in one rename; the file is never readable beyond `mode`."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def prepare(args: argparse.Namespace) -> bytes:
    """Keys, pin and seed of one instance; returns the seed written to --out."""
    seed_dir, state = Path(args.seed_dir), Path(args.state)
    texts = {}
    for name in TEXTS:
        try:
            texts[name] = (seed_dir / name).read_bytes()
        except OSError as exc:
            raise SeedError(f"cannot read the compiled {name}: {exc}") from exc
    key = Path(args.key)
    project_key = ensure_keypair(
        key, f"holos-{key.parent.name}"
    )  # as holosc.core.layout.key_comment
    if not state.is_dir():
        raise SeedError(f"state directory {state} is missing")
    host_public = ensure_keypair(state / HOST_KEY, args.alias)
    host_private = (state / HOST_KEY).read_text("utf-8")
    # The pin: key type and key, under the alias the clients pass as HostKeyAlias.
    kind, blob = host_public.split()[:2]
    write_private(state / KNOWN_HOSTS, f"{args.alias} {kind} {blob}\n".encode(), 0o644)
    texts["vendor-data"] = vendor_data(project_key, host_private, f"{kind} {blob}").encode()
    seed = build_iso(texts)
    write_private(Path(args.out), seed)
    log.info(
        "%s: seed %s written (project key %s, host key %s)",
        args.instance,
        args.out,
        fingerprint(project_key),
        fingerprint(host_public),
    )
    return seed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="holos-seed",
        description="Build an instance's NoCloud seed from the compiled texts and this "
        "host's keys.",
        epilog="exit codes: 0 ok, 1 error, 2 usage",
    )
    parser.add_argument("--instance", required=True, help="name used in log lines")
    parser.add_argument("--seed-dir", required=True, help="user-data, meta-data, network-config")
    parser.add_argument("--state", required=True, help="the instance's state directory")
    parser.add_argument("--key", required=True, help="the project's private key file")
    parser.add_argument("--alias", required=True, help="HostKeyAlias of the instance")
    parser.add_argument("--out", required=True, help="seed ISO to write (0600)")
    args = parser.parse_args(argv)
    for option in ("seed_dir", "state", "key", "out"):
        if not os.path.isabs(getattr(args, option)):
            parser.error(f"--{option.replace('_', '-')} must be an absolute path")
    if not args.alias or any(c.isspace() or c in ",*?!" for c in args.alias):
        parser.error("--alias must be one host-name-like word")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``holos-seed``; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    started = time.monotonic()
    try:
        prepare(args)
    except (SeedError, OSError) as exc:
        log.error("%s: cannot prepare the seed: %s", args.instance, exc)
        return EXIT_ERROR
    log.info("%s: seed ready in %.3f s", args.instance, time.monotonic() - started)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
