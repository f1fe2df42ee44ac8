"""Which journal entries belong to a unit's start (holosc/host/journal.py): the filter on
journalctl's JSON, with entries as systemd 252 and 257 write them (the private systemd
tests run it against a real journal: tests/test_lifecycle_faults.py)."""

from __future__ import annotations

from holosc.host.journal import _message, _of_this_start

NOW, OLD = "1" * 32, "2" * 32
BOOT = "b" * 32


def test_an_entry_of_another_start_never_counts() -> None:
    assert _of_this_start({"_SYSTEMD_INVOCATION_ID": NOW}, NOW, 0, BOOT)
    assert _of_this_start({"INVOCATION_ID": NOW}, NOW, 0, BOOT)  # the manager's own line
    assert _of_this_start({"USER_INVOCATION_ID": NOW}, NOW, 0, BOOT)  # a user manager's
    late = {"_SYSTEMD_INVOCATION_ID": OLD, "__MONOTONIC_TIMESTAMP": "900", "_BOOT_ID": BOOT}
    assert not _of_this_start(late, NOW, 100, BOOT)


def test_an_entry_naming_no_start_counts_when_it_came_after_it_in_this_boot() -> None:
    entry = {"__MONOTONIC_TIMESTAMP": "900", "_BOOT_ID": BOOT}
    assert _of_this_start(entry, NOW, 100, BOOT)
    assert not _of_this_start(entry, NOW, 1000, BOOT)  # before the start
    assert not _of_this_start(entry, NOW, 100, "c" * 32)  # another boot
    assert not _of_this_start({"_BOOT_ID": BOOT}, NOW, 100, BOOT)


def test_a_message_that_is_not_utf8_is_a_list_of_bytes() -> None:
    assert _message([0x66, 0xFF]) == "f\ufffd"
    assert _message("text") == "text" and _message(None) == ""
