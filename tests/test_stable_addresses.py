"""Scaling, adding or removing a service changes no file of any other instance.

`holosc up` restarts an instance when one of its compiled files changes, so this is what
keeps compose's promise that scaling one service never restarts another: each instance
keeps the address and ports its previous build gave it (read from that build's lock), and
peer names live in one project file per network (`<p>/hosts.<network>`), not in any
instance's own files.
The private-systemd side of the same promise is in tests/test_lifecycle_faults.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from holosc.core.compiler import Output, compile_project
from holosc.core.lock import LOCK_FILE, Lock
from holosc.core.model import Project
from holosc.core.validate.checks import build_project
from holosc.load.files import HostFiles
from holosc.load.parse import load_text
from tests.conftest import EXAMPLES, REPO

STACK = """\
name: shop
x-vm: &vm
  image: ./guest/base.raw
services:
  db:
    <<: *vm
  api:
    <<: *vm
    replicas: {api}
    depends_on: [db]
    ports: ["3000"]
  web:
    <<: *vm
    replicas: 2
    depends_on: [api]
    ports: ["8080:80", "9000"]
{extra}"""

CACHE = """\
  cache:
    <<: *vm
    ports: ["6379"]
"""


def project(text: str) -> Project:
    doc = load_text(text, directory=EXAMPLES / "tiny-guest")
    return build_project(doc, HostFiles()).project


def as_lock(data: dict[str, object]) -> Lock:
    return Lock.from_json(json.dumps(data), "test")


def compile_stack(previous: Output | None = None, *, api: int = 2, extra: str = "") -> Output:
    lock = Lock.from_json(previous.files[Path(LOCK_FILE)].data, "test") if previous else None
    return compile_project(project(STACK.format(api=api, extra=extra)), previous=lock)


def instance_files(output: Output, instance: str) -> dict[str, bytes]:
    return {str(p): f.data for p, f in output.files.items() if p.parts[1:2] == (instance,)}


def lock_instances(output: Output) -> dict[str, dict[str, object]]:
    instances = json.loads(output.files[Path(LOCK_FILE)].data)["instances"]
    assert isinstance(instances, dict)
    return instances


@pytest.mark.parametrize(
    ("change", "kwargs", "gone", "new"),
    [
        ("scale api 2 -> 1", {"api": 1}, {"api-1"}, set()),
        ("scale api 2 -> 3", {"api": 3}, set(), {"api-2"}),
        ("add a service", {"extra": CACHE}, set(), {"cache-0"}),
    ],
)
def test_other_instances_keep_every_file(
    change: str, kwargs: dict[str, object], gone: set[str], new: set[str]
) -> None:
    before = compile_stack()
    after = compile_stack(before, **kwargs)  # type: ignore[arg-type]
    old, now = lock_instances(before), lock_instances(after)
    assert set(now) == set(old) - gone | new, change
    for inst in set(old) - gone:
        assert instance_files(after, inst) == instance_files(before, inst), (change, inst)
        assert now[inst] == old[inst], (change, inst)
    # New instances get what nobody holds: no address or host port is given twice.
    ips = [i["ip"] for i in now.values()]
    ports = [p for i in now.values() for p in [i["ssh_port"], *i["ports"]]]
    host_ports = [str(p).split(":")[0] for p in ports]
    assert len(set(ips)) == len(ips) and len(set(host_ports)) == len(host_ports), now
    # The peer list is the one file that changes, and it names everyone.
    hosts = after.files[Path("shop/hosts.default")].data.decode()
    for inst, info in now.items():
        assert f"{info['ip']} " in hosts and f" {inst}" in hosts, (inst, hosts)


def test_removing_a_service_in_the_middle_moves_nobody() -> None:
    """Without the previous lock, web's addresses would shift down into api's."""
    with_cache = compile_stack(extra=CACHE)
    text = (
        STACK.format(api=2, extra=CACHE)
        .replace(
            '  api:\n    <<: *vm\n    replicas: 2\n    depends_on: [db]\n    ports: ["3000"]\n', ""
        )
        .replace("depends_on: [api]", "depends_on: [db]")
    )
    lock = Lock.from_json(with_cache.files[Path(LOCK_FILE)].data, "test")
    after = compile_project(project(text), previous=lock)
    fresh = compile_project(project(text))
    for inst in ("db-0", "web-0", "web-1", "cache-0"):
        assert instance_files(after, inst) == instance_files(with_cache, inst), inst
    assert instance_files(fresh, "web-0") != instance_files(with_cache, "web-0")


def test_a_fresh_build_is_laid_out_in_instance_order() -> None:
    """No previous lock: addresses and ports follow instance order (the golden files)."""
    now = lock_instances(compile_stack())
    order = ["db-0", "api-0", "api-1", "web-0", "web-1"]  # dependency order, then replicas
    assert [now[i]["ip"] for i in order] == [f"10.10.0.{n}" for n in range(2, 7)]
    assert [now[i]["ssh_port"] for i in order] == sorted(now[i]["ssh_port"] for i in order)


@pytest.mark.parametrize(
    "tampered",
    [
        {"ip": "192.168.1.5"},  # outside the subnet
        {"ip": "10.10.0.255"},  # the broadcast address
        {"ip": "10.10.0.2"},  # db-0's address
        {"ssh_port": 8080},  # web-0's published port
        {"ssh_port": 80},  # a privileged port
        {"ssh_port": "22"},  # not a number
        {"ports": ["3000"]},  # not host:guest
        {"ports": "oops"},
    ],
)
def test_an_edited_lock_cannot_double_book(tampered: dict[str, object]) -> None:
    """A lock is a file people edit and commit: a value that is not valid is handed out
    again, never used as is, and never raises."""
    before = compile_stack()
    lock = json.loads(before.files[Path(LOCK_FILE)].data)
    lock["instances"]["api-1"] |= tampered
    after = lock_instances(
        compile_project(project(STACK.format(api=2, extra="")), previous=as_lock(lock))
    )
    ips = [i["ip"] for i in after.values()]
    host_ports = [
        str(p).split(":")[0] for i in after.values() for p in [i["ssh_port"], *i["ports"]]
    ]
    assert len(set(ips)) == len(ips) and len(set(host_ports)) == len(host_ports), after
    assert all(i["ip"].startswith("10.10.0.") for i in after.values())  # type: ignore[union-attr]
    assert all(1024 <= int(i["ssh_port"]) <= 65535 for i in after.values())  # type: ignore[call-overload]
    for inst in ("db-0", "api-0", "web-0", "web-1"):  # the untouched keep theirs
        assert after[inst] == lock_instances(before)[inst], inst


def test_build_keeps_what_the_output_directory_locked(tmp_path: Path) -> None:
    """`holosc build` reads the lock of the directory it writes (committed with it)."""
    project = tmp_path / "p"
    project.mkdir()
    (project / "guest").symlink_to(EXAMPLES / "tiny-guest" / "guest")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def build(api: int) -> None:
        (project / "holos.yaml").write_text(STACK.format(api=api, extra=""))
        subprocess.run(
            [sys.executable, "-m", "holosc", "-q", "build", "-f", str(project / "holos.yaml")],
            env=env, check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    build(api=2)
    web = (project / "deploy" / "shop" / "web-1" / "launch.sh").read_bytes()
    build(api=1)
    assert (project / "deploy" / "shop" / "web-1" / "launch.sh").read_bytes() == web
    build(api=3)  # api-1 comes back on an address nobody holds
    locked = json.loads((project / "deploy" / LOCK_FILE).read_text())["instances"]
    assert len({i["ip"] for i in locked.values()}) == len(locked)


NETWORKS = """\
name: nets
x-vm: &vm
  image: ./guest/base.raw
networks:
{networks}
services:
  db:
    <<: *vm
    networks: [back]
  web:
    <<: *vm
    replicas: {web}
    networks: [{web_networks}]
"""


def compile_networks(previous: Output | None = None, **fields: object) -> Output:
    values = {"networks": "  back: {}\n  front: {}", "web": 1, "web_networks": "front"} | fields
    lock = Lock.from_json(previous.files[Path(LOCK_FILE)].data, "test") if previous else None
    return compile_project(project(NETWORKS.format(**values)), previous=lock)


def test_adding_a_network_moves_no_subnet_and_restarts_nobody_else() -> None:
    """A network holosc picks a subnet for keeps it: a new one, even first in name order,
    takes a free subnet, and the instances that did not join it keep every file."""
    before = compile_networks()
    after = compile_networks(
        before,
        networks="  back: {}\n  front: {}\n  admin: {}",
        web_networks="front, admin",
    )
    subnets = json.loads(before.files[Path(LOCK_FILE)].data)["networks"]
    now = json.loads(after.files[Path(LOCK_FILE)].data)["networks"]
    assert {n: now[n] for n in subnets} == subnets and now["admin"] not in subnets.values()
    assert instance_files(after, "db-0") == instance_files(before, "db-0")
    assert after.files[Path("nets/hosts.back")] == before.files[Path("nets/hosts.back")]
    # Scaling web changes front's list alone: db (on back only) gets nothing new.
    scaled = compile_networks(before, web=2)
    assert scaled.files[Path("nets/hosts.back")] == before.files[Path("nets/hosts.back")]
    assert scaled.files[Path("nets/hosts.front")] != before.files[Path("nets/hosts.front")]
    assert instance_files(scaled, "web-0") == instance_files(before, "web-0")
