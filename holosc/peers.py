"""Live peer names: after `holosc up` changed the project's peer list (a service scaled,
added or removed), each guest that kept running gets the new /etc/hosts over SSH.

Guests that start get the list from QEMU (render/hosts.py); the ones that run on must not
be restarted for it (compose semantics). A guest that cannot be reached (no sshd, no sudo
or doas) keeps its old list until its next start, and `up` says so.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from holosc import guestssh, install
from holosc import plan as P
from holosc.errors import HolosError
from holosc.render import hosts
from holosc.systemd import Manager

TIMEOUT = 60  # seconds for one guest: connect, authenticate, write a small file


def update(
    manager: Manager, project: str, instances: Sequence[str], say: Callable[[str], None]
) -> None:
    """Send the installed peer list to each of `instances` (running guests)."""
    if not instances:
        return
    peers = (manager.artifacts(project) / P.PEERS_FILE).read_bytes()
    lock = install.lock_instances(manager, project, install.read_lock(manager, project))

    def send(instance: str) -> str:
        try:
            address = guestssh.target(lock.get(instance, {}))
        except HolosError as exc:
            return exc.message
        return _send(manager, project, instance, address, peers)

    # At once: an unreachable guest costs its connect timeout, not the sum of them.
    with ThreadPoolExecutor(max_workers=8) as pool:
        for instance, why in zip(instances, pool.map(send, instances), strict=True):
            if why:
                say(
                    f"holosc: warning: {instance}: peer names not updated ({why}); "
                    "it gets them at its next start"
                )
            else:
                say(f"{instance}: peer names updated")


def _send(
    manager: Manager, project: str, instance: str, address: tuple[int, str], peers: bytes
) -> str:
    """ "" when the guest wrote its new /etc/hosts, else why not."""
    options = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10")
    try:
        argv = guestssh.ssh_argv(
            manager, project, instance, address, hosts.update_command(), options
        )
        result = subprocess.run(
            argv, input=peers, capture_output=True, timeout=TIMEOUT, check=False
        )
    except HolosError as exc:
        return exc.message
    except subprocess.TimeoutExpired:
        return f"no answer within {TIMEOUT} s"
    except OSError as exc:
        return f"cannot run ssh: {exc.strerror}"
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"ssh exited {result.returncode}"
    return ""
