"""Live peer names: after `holosc up` changed a network's peer list (a service scaled,
added or removed), each guest on it that kept running gets the new /etc/hosts over SSH.

Guests that start get the list from QEMU (render/hosts.py); the ones that run on must not
be restarted for it (compose semantics). A guest that cannot be reached (no sshd, no sudo
or doas) keeps its old list until its next start, and `up` says so; one whose sshd does
not greet within GREETING seconds is not waited for (`up` must not wait out ssh's
timeouts for a guest that runs no sshd).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor

from holosc.core import layout
from holosc.core.render import hosts
from holosc.errors import HolosError
from holosc.host import guestssh, install, run
from holosc.host.systemd import Manager

GREETING = 2.0  # seconds a running guest's sshd has to greet before it is pushed to
TIMEOUT = 60  # seconds for one guest: connect, authenticate, write a small file
OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10")


def update(
    manager: Manager,
    project: str,
    instances: Sequence[str],
    changed: Collection[str],
    say: Callable[[str], None],
) -> None:
    """Send the installed peer lists to each of `instances` (running guests) on one of
    the `changed` networks."""
    lock = install.read_lock(manager, project)
    if lock is None:
        return
    instances = [
        i
        for i in instances
        if i not in lock.instances or set(lock.instances[i].networks) & set(changed)
    ]
    if not instances:
        return

    def send(instance: str) -> str:
        if instance not in lock.instances:
            return "not in the installed lock"
        # Its networks' lists, in its NICs' order (sorted by name, as compiled).
        peers = "".join(
            layout.peers_file(manager.config_dir, project, network).read_text()
            for network in sorted(lock.instances[instance].networks)
            if layout.peers_file(manager.config_dir, project, network).is_file()
        )
        try:
            address = guestssh.target(lock.instances[instance])
            if not guestssh.greets(address[0], GREETING):
                # No sshd (yet): ssh would wait out its timeouts and hold up all that time.
                return f"no SSH greeting on 127.0.0.1:{address[0]} within {GREETING:g} s"
            argv = guestssh.ssh_argv(
                manager, project, instance, address, hosts.update_command(), OPTIONS
            )
            result = run.run(argv, check=False, timeout=TIMEOUT, input=peers)
        except HolosError as exc:
            return exc.message
        lines = result.stderr.strip().splitlines()
        return "" if result.returncode == 0 else lines[-1] if lines else f"exit {result.returncode}"

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
