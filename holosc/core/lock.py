"""holos.lock.json: what was compiled from what, one frozen type for writer and readers.

The compiler writes it (`Lock.to_json`); `holosc` reads it back from an installed project
(`Lock.from_json`: instances for exec, ps and the unit order, digests for a minimal
rebuild). Every instance name is checked before anyone makes a path of it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from holosc.core import jsontext, layout, names
from holosc.errors import Diagnostic, LoadError

LOCK_FILE = "holos.lock.json"


@dataclasses.dataclass(frozen=True, slots=True)
class LockedInstance:
    service: str
    ip: str
    ssh_port: int
    user: str
    ports: tuple[str, ...]  # "host:guest"
    networks: Mapping[str, str] = dataclasses.field(default_factory=dict)  # name -> IP
    volumes: tuple[str, ...] = ()  # the named volumes it mounts (snapshots take them too)

    def ip_order(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.ip.split(".") if part.isdigit())


@dataclasses.dataclass(frozen=True)
class Lock:
    compiler: str
    project: str
    profiles: tuple[str, ...]
    sources: Mapping[str, str]  # input file name -> sha256
    instances: Mapping[str, LockedInstance]
    files: Mapping[str, str]  # output path -> sha256
    networks: Mapping[str, str] = dataclasses.field(default_factory=dict)  # name -> subnet

    def to_json(self) -> str:
        data = {
            "compiler": self.compiler,
            "project": self.project,
            "profiles": list(self.profiles),
            "sources": dict(self.sources),
            "instances": {name: _instance_json(inst) for name, inst in self.instances.items()},
            "networks": dict(self.networks),
            "files": dict(self.files),
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, source: str) -> Lock:
        """Parse a lock read from `source` (named in errors).

        :raises ValueError: when it is not JSON of a lock's shape (holosc.core.jsontext).
        :raises names.NameError_: when it names an instance that is not <label>-<index>.
        """
        data = jsontext.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{source}: not a JSON object")
        instances = _mapping(data.get("instances", {}), "instances", source)
        return cls(
            compiler=str(data.get("compiler", "")),
            project=str(data.get("project", "")),
            profiles=tuple(map(str, _list(data.get("profiles", []), "profiles", source))),
            sources=_strings(data.get("sources", {}), "sources", source),
            instances=MappingProxyType(
                {
                    names.check_instance(name, source): _instance(name, info, source)
                    for name, info in instances.items()
                }
            ),
            files=_strings(data.get("files", {}), "files", source),
            networks=_strings(data.get("networks", {}), "networks", source),
        )


def _instance_json(inst: LockedInstance) -> dict[str, Any]:
    data: dict[str, Any] = {
        "service": inst.service,
        "ip": inst.ip,
        "ssh_port": inst.ssh_port,
        "user": inst.user,
        "ports": list(inst.ports),
        "networks": dict(inst.networks),
    }
    if inst.volumes:  # only then: locks of projects without volumes keep their bytes
        data["volumes"] = list(inst.volumes)
    return data


def _instance(name: str, info: Any, source: str) -> LockedInstance:
    info = _mapping(info, "instance", source)
    try:
        return LockedInstance(
            service=str(info.get("service") or layout.split_instance(name)[0]),
            ip=str(info.get("ip", "")),  # only orders instances; exec needs port and user
            ssh_port=int(info["ssh_port"]),
            user=str(info["user"]),
            ports=tuple(map(str, info.get("ports", ()))),
            # Before networks: (holosc < 0.x), the one address was the default network's.
            networks=_strings(
                info.get("networks", {"default": info.get("ip", "")}), "networks", source
            ),
            volumes=tuple(
                names.check("volume", v, source)
                for v in _list(info.get("volumes", []), "volumes", source)
            ),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{source}: an instance entry lacks {exc}") from exc


def _mapping(value: Any, what: str, source: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{source}: '{what}' is not a mapping")
    return value


def _list(value: Any, what: str, source: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{source}: '{what}' is not a list")
    return value


def _strings(value: Any, what: str, source: str) -> Mapping[str, str]:
    return MappingProxyType({str(k): str(v) for k, v in _mapping(value, what, source).items()})


def unreadable(source: str, exc: Exception, hint: str) -> LoadError:
    """The error for a committed lock (`source`) that is not one holosc can read: a merge
    conflict or an edit gone wrong. Refused rather than ignored, because ignoring it
    silently changes what the lock keeps stable (docs/units.md)."""
    if isinstance(exc, jsontext.JSONTextError):
        line, col, reason = exc.line, exc.col, exc.reason
    else:
        line, col, reason = None, None, str(exc).removeprefix(f"{source}: ")
    diagnostic = Diagnostic(reason, file=source, line=line, col=col, hint=hint)
    return LoadError(f"{source}: not a lock holosc can read", [diagnostic])
