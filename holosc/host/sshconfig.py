"""`holosc ssh-config`: each instance as an OpenSSH `Host` block, or an Ansible inventory,
so that ssh, scp, rsync, Ansible and editors' remote modes reach the guests with the
project key and accept only the host key holos-seed pinned (as `holosc exec` does).

The host is named `<instance>.<project>` (`ssh -F <(holosc ssh-config) web-0.shop`).
Paths go through escape.ssh_config_path (ssh expands `%` and `${` in them); the rest is
checked: a port, a user name (guestssh.target), names and addresses holosc made.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

from holosc.core import layout
from holosc.core.lock import LockedInstance
from holosc.core.render.escape import ssh_config_path, yaml_document
from holosc.errors import Diagnostic, RuntimeCommandError
from holosc.host import guestssh, keys

ADDRESS = "127.0.0.1"  # every guest's SSH port is forwarded on the host's loopback


@dataclasses.dataclass(frozen=True)
class Access:
    """How to reach one instance over SSH from this host."""

    project: str
    instance: str
    service: str
    port: int
    user: str
    key: Path
    known_hosts: Path

    @property
    def host(self) -> str:
        return f"{self.instance}.{self.project}"

    @property
    def alias(self) -> str:
        return layout.host_key_alias(self.project, self.instance)

    def options(self) -> list[tuple[str, str]]:
        """The ssh_config keywords and values (each value one escaped word)."""
        return [
            ("HostName", ADDRESS),
            ("Port", str(self.port)),
            ("User", self.user),
            ("IdentityFile", _path(self.key)),
            ("IdentitiesOnly", "yes"),
            ("UserKnownHostsFile", _path(self.known_hosts)),
            ("GlobalKnownHostsFile", "/dev/null"),
            ("StrictHostKeyChecking", "yes"),
            ("HostKeyAlias", self.alias),
            ("LogLevel", "ERROR"),
        ]


def accesses(
    state_dir: Path, project: str, instances: Mapping[str, LockedInstance], login: str | None
) -> list[Access]:
    """One Access per instance, in the order given.

    :raises RuntimeCommandError: for a port or user name that is not one (guestssh.target).
    """
    key = keys.key_path(state_dir, project)
    found = []
    for name, info in instances.items():
        port, user = guestssh.target(info, login)
        found.append(
            Access(
                project,
                name,
                info.service,
                port,
                user,
                key,
                layout.known_hosts(state_dir, project, name),
            )
        )
    return found


def ssh_config(items: Iterable[Access]) -> str:
    """An ssh_config text: one `Host` block per instance, as `vagrant ssh-config` prints."""
    blocks = []
    for item in items:
        lines = [f"Host {item.host}"] + [f"  {k} {v}" for k, v in item.options()]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def ansible_inventory(items: Iterable[Access]) -> str:
    """An Ansible YAML inventory: a group per service, named as the service (a project
    group above them would clash with a service of the project's name). Ansible splits
    ansible_ssh_common_args as a shell would (shlex), then ssh reads each `-o` value as
    an ssh_config line: each value is escaped for both, in that order."""
    groups: dict[str, dict[str, dict[str, object]]] = {}
    for item in items:
        common = [
            word
            for keyword, value in item.options()
            if keyword not in ("HostName", "Port", "User")
            for word in ("-o", f"{keyword}={value}")
        ]
        groups.setdefault(item.service, {})[item.host] = {
            "ansible_host": ADDRESS,
            "ansible_port": item.port,
            "ansible_user": item.user,
            "ansible_ssh_common_args": shlex.join(common),
        }
    children = {service: {"hosts": hosts} for service, hosts in groups.items()}
    return yaml_document({"all": {"children": children}})


def _path(path: Path) -> str:
    try:
        return ssh_config_path(str(path))
    except ValueError as exc:
        message = f"{exc}: set HOLOSC_STATE_DIR to a plainer path"
        raise RuntimeCommandError(message, [Diagnostic(message, file="holosc")]) from exc
