"""Values inside the option strings of other programs: one function per parser.

The compiler (holosc.core.render.escape re-exports these) and the runtime helpers
(holos-bake, holos-health) write the same strings, so the escaping lives here, where both
can import it (the helpers never import the compiler). Each function either returns the
text that program's parser reads back as exactly `value`, or raises ValueError for a
value the parser has no way to carry. tests/test_escaping.py checks each against the real
program (QEMU answering over QMP, `ssh -G`).

- `qemu_value`: the value of a `key=value` inside a QEMU option string (QemuOpts and
  keyval: `-drive`, `-chardev`, `-fw_cfg`, `-device`, `-netdev`, `-object`, `-blockdev`).
- `qemu_name`: a value in the implied first position of such a string (`-machine TYPE`),
  where QEMU has no escape at all.
- `qemu_cpu`: a whole `-cpu` value, which QEMU splits at every comma.
- `ssh_path`: a path in an `ssh -o Key=VALUE` option (UserKnownHostsFile, IdentityFile).
"""

from __future__ import annotations

import re

# QEMU's machine type and CPU model names: letters, digits, '.', '_', '-'.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_QEMU_NAME = re.compile(_NAME)
# -cpu MODEL[,FEATURE...]: +flag, -flag, flag or flag=value (x86_cpu_parse_featurestr
# splits at every comma, with no escape).
_QEMU_CPU = re.compile(rf"{_NAME}(,[+-]?[A-Za-z0-9._-]+(=[A-Za-z0-9._:+-]*)?)*")
_HELP = {"help", "?"}  # QEMU prints a list and exits 0 instead of starting


def qemu_value(value: str) -> str:
    """A value after `key=` in a QEMU option string: a comma is doubled, as both QemuOpts
    (get_opt_value) and keyval read `,,` back as one `,`; nothing else is special there."""
    if "\0" in value:
        raise ValueError("QEMU option values cannot contain NUL")
    return value.replace(",", ",,")


def qemu_name(value: str) -> str:
    """A value in an option string's implied first position (`-machine q35,accel=tcg`).

    There QEMU has no escape: the value ends at the first comma whatever follows, and a
    `=` before it turns the value into a key. So only names are allowed.
    """
    if not _QEMU_NAME.fullmatch(value) or value in _HELP:
        raise ValueError(f"{value!r} is not a QEMU name (letters, digits, '.', '_', '-')")
    return value


def qemu_cpu(value: str) -> str:
    """A `-cpu` value: a model name and optional features (`host,-vmx`, `max,pmu=off`)."""
    model = value.split(",", 1)[0]
    if not _QEMU_CPU.fullmatch(value) or model in _HELP:
        raise ValueError(
            f"{value!r} is not a QEMU CPU model with optional features "
            "(MODEL[,+FLAG|,-FLAG|,FLAG=VALUE...])"
        )
    return value


def ssh_path(value: str) -> str:
    """A path as the value of an `ssh -o` option: ssh splits the value into words the way
    its config file does (argv_split: inside double quotes only `\\"` and `\\\\` are
    escapes), then expands `%` tokens in paths, so the path is quoted and `%` doubled.
    Absolute paths only: ssh would expand a leading `~`."""
    if re.search(r"[\0\n\r]", value) or not value.startswith("/"):
        raise ValueError(f"{value!r}: not an absolute path an ssh option can carry")
    quoted = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{quoted}"'
