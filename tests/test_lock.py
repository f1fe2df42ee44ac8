"""holos.lock.json has one type: what the compiler writes is what holosc reads back."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import pytest

from holosc.core.lock import LOCK_FILE, Lock
from holosc.core.names import NameError_
from tests.conftest import compile_example, example_names


@pytest.mark.parametrize("name", example_names())
def test_the_lock_reads_back_to_the_same_bytes(name: str) -> None:
    data = compile_example(name).files[PurePosixPath(LOCK_FILE)].data
    lock = Lock.from_json(data, LOCK_FILE)
    assert lock.to_json().encode() == data
    assert lock.instances and all(i.ssh_port > 0 for i in lock.instances.values())


def test_a_lock_naming_a_path_or_lacking_a_field_is_refused() -> None:
    data = json.loads(compile_example("three-tier").files[PurePosixPath(LOCK_FILE)].data)
    inst = next(iter(data["instances"].values()))
    with pytest.raises(NameError_):
        Lock.from_json(json.dumps({**data, "instances": {"../x-0": inst}}), LOCK_FILE)
    del inst["ssh_port"]
    with pytest.raises(ValueError, match="lacks 'ssh_port'"):
        Lock.from_json(json.dumps(data), LOCK_FILE)
    with pytest.raises(ValueError):
        Lock.from_json("[]", LOCK_FILE)


def test_a_hand_written_lock_needs_only_what_exec_uses() -> None:
    """tests/runtime/test_ssh_argv.py installs a lock with a port and a user only."""
    lock = Lock.from_json('{"instances": {"web-0": {"ssh_port": 2222, "user": "u"}}}', "x")
    web = lock.instances["web-0"]
    assert (web.service, web.ssh_port, web.user, web.ip_order()) == ("web", 2222, "u", ())
