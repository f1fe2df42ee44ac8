"""Parsers for the small value grammars of holos.yaml: durations, sizes, ports, PCI.

Each parser returns a value or raises ValueError with a message meant for the user.
"""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_DURATION_MS = {
    "ns": 1e-6,
    "us": 1e-3,
    "µs": 1e-3,
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*([KMGT]?)(I?B)?", re.IGNORECASE)
_SIZE_MULT = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
PCI_PATTERN = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\Z")
MIN_SIZE = 1024 * 1024
# qemu-img creates qcow2 images up to 2 PiB with its default 64 KiB clusters (measured).
MAX_SIZE = 1024**5
# systemd takes time spans below 2^64 µs (~584,000 years); one year is far from both that
# limit and any real timeout, so sums of durations (health gate budgets) stay valid too.
MAX_DURATION_MS = 365 * 86_400_000


def parse_duration_ms(value: str | int | float) -> int:
    """Compose duration (`1m30s`, `500ms`, `2h`; a bare number is seconds) to milliseconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 1m30s or 500ms")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration {value} must not be negative")
        return _bounded_ms(value * 1000, value)
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"duration '{value}' must not be negative")
    if not text:
        raise ValueError("duration is empty")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return _bounded_ms(float(text) * 1000, value)
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m[1]) * _DURATION_MS[m[2]]
        pos = m.end()
    if pos != len(text):
        raise ValueError(f"'{value}' is not a duration (expected e.g. 30s, 1m30s, 500ms)")
    return _bounded_ms(total, value)


def _bounded_ms(ms: float, value: object) -> int:
    """Whole milliseconds; NaN, infinity and more than MAX_DURATION_MS are errors."""
    if not ms <= MAX_DURATION_MS:  # also NaN; an int too large for a float compares fine
        if ms != ms:
            raise ValueError(f"duration {value} is not a number")
        shown = value if not isinstance(value, int) or value < 10**20 else "given"
        raise ValueError(f"duration {shown} is longer than 365d, the longest holosc accepts")
    return round(ms)


def parse_size(value: str | int) -> int:
    """Bytes from `10G`, `512M`, `2GB`, `1.5G`, `1048576` (binary multipliers, min 1 MiB)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 10G")
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE.fullmatch(value.strip())
        if not m or (m[3] and m[3].upper() == "IB" and not m[2]):
            raise ValueError(f"'{value}' is not a size (expected e.g. 10G, 512M, 2GB)")
        number = float(m[1]) * _SIZE_MULT[m[2].upper()]
        size = int(number) if number <= MAX_SIZE else MAX_SIZE + 1
    if size > MAX_SIZE:
        raise ValueError(f"size {value!r} is over the maximum of 1024T (qcow2's limit is 2048T)")
    if size < MIN_SIZE:
        raise ValueError(f"size {value!r} is below the minimum of 1M (1048576 bytes)")
    return size


def normalise_pci(value: str) -> str:
    """`01:00.0` → `0000:01:00.0`; raises ValueError unless a full PCI address results."""
    text = value.strip().lower()
    if not text:
        raise ValueError("PCI address is empty")
    if text.count(":") == 1:
        text = "0000:" + text
    if not PCI_PATTERN.fullmatch(text):
        raise ValueError(f"'{value}' is not a PCI address (expected e.g. 01:00.0 or 0000:01:00.0)")
    return text


def parse_port(spec: str | int) -> tuple[int | None, int, str]:
    """`[HOST:]GUEST[/tcp]` → (host or None for automatic, guest, protocol)."""
    text = str(spec)
    body, slash, proto = text.rpartition("/") if "/" in text else (text, "", "tcp")
    if slash and proto != "tcp":
        raise ValueError(f"protocol '{proto}' is not supported; only tcp is forwarded")
    if body.count(":") > 1:
        raise ValueError(f"'{text}' is not HOST:GUEST (IP addresses and ranges are not supported)")
    host_text, _, guest_text = body.rpartition(":")
    guest = _port_number(guest_text, "guest")
    if guest == 0:
        raise ValueError("guest port must be between 1 and 65535")
    if not _:
        return None, guest, "tcp"
    host = _port_number(host_text, "host")
    return (host or None), guest, "tcp"


def _port_number(text: str, what: str) -> int:
    if not re.fullmatch(r"\d{1,5}", text):
        raise ValueError(f"{what} port '{text}' is not a number between 1 and 65535")
    number = int(text)
    if number > 65535:
        raise ValueError(f"{what} port {number} is out of range (1-65535)")
    return number


def format_seconds(ms: int) -> str:
    """Milliseconds as seconds for command lines: 30000 → "30", 1500 → "1.5"."""
    whole, frac = divmod(ms, 1000)
    return str(whole) if not frac else f"{whole}.{frac:03d}".rstrip("0")
