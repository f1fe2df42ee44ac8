"""Host checks behind `holosc doctor`: can this machine run what holosc compiles?

Each check returns a `Check` (ok, warn or fail) and never raises; `fail` means a compiled
project cannot run here, `warn` that something optional is missing or slow. The facts
mirror what the generated launch scripts and units rely on: the KVM test is the one in
templates/launch.sh.j2, the firmware and virtiofsd candidates are holosc.core.layout's, and the
helpers are looked up in systemd's fixed search path because units name them bare.
Probes run with a short timeout, argv lists and stdin closed.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import grp
import os
import pwd
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from holosc.core import layout
from holosc.errors import HolosError
from holosc.host import helpers, run, systemd

PROBE_TIMEOUT = 5.0
# logind's flag files: one per user whose manager runs without a login session.
LINGER_DIR = Path("/var/lib/systemd/linger")


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    name: str
    status: Status
    detail: str
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": str(self.status),
            "detail": self.detail,
            "hint": self.hint,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class KvmFacts:
    """What decides between KVM and TCG, read the way the launch script reads it."""

    device_usable: bool
    device_error: str | None
    cpu_flag: str | None  # "vmx" or "svm"
    pvm: bool
    device_exists: bool = True
    device_group: str | None = None  # the group owning /dev/kvm when we are not in it

    @property
    def usable(self) -> bool:
        return self.device_usable and self.cpu_flag is not None and not self.pvm


def read_kvm_facts(
    device: Path = Path("/dev/kvm"),
    cpuinfo: Path = Path("/proc/cpuinfo"),
    modules: Path = Path("/sys/module"),
) -> KvmFacts:
    """/dev/kvm opened read-write, vmx/svm in cpuinfo, and no kvm_pvm module."""
    error = None
    try:
        os.close(os.open(device, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        error = os.strerror(exc.errno or errno.EIO)
    exists = os.path.exists(device)
    group = _foreign_group(device) if error and exists else None
    try:
        flags = set(re.findall(r"\b(vmx|svm)\b", cpuinfo.read_text()))
    except OSError:
        flags = set()
    flag = "vmx" if "vmx" in flags else "svm" if "svm" in flags else None
    return KvmFacts(error is None, error, flag, (modules / "kvm_pvm").exists(), exists, group)


def _foreign_group(device: Path) -> str | None:
    """The group of `device` when this process is not a member (e.g. "kvm")."""
    try:
        gid = device.stat().st_gid
    except OSError:
        return None
    if gid == os.getegid() or gid in os.getgroups():
        return None
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_kvm(facts: KvmFacts) -> Check:
    if facts.usable:
        return Check("kvm", Status.OK, f"/dev/kvm usable, CPU has {facts.cpu_flag}")
    reasons = []
    hints = []
    if facts.cpu_flag is None:
        # No module helps a CPU without VT-x/AMD-V: the firmware or the hypervisor must.
        hints.append(
            "enable VT-x/AMD-V in the firmware, or nested virtualisation in the hypervisor "
            "this host runs under"
        )
    if not facts.device_exists:
        reasons.append("there is no /dev/kvm")
        if facts.cpu_flag is not None:
            module = "kvm_intel" if facts.cpu_flag == "vmx" else "kvm_amd"
            hints.append(f"modprobe {module} (in a container: pass /dev/kvm in)")
    elif facts.device_group:
        reasons.append(f"you are not in the {facts.device_group} group, which owns /dev/kvm")
        hints.append(f"sudo usermod -aG {facts.device_group} $USER, then log in again")
    elif not facts.device_usable:
        reasons.append(f"/dev/kvm cannot be opened read-write ({facts.device_error})")
    if facts.cpu_flag is None:
        reasons.append("no vmx/svm in /proc/cpuinfo")
    if facts.pvm:
        reasons.append("/dev/kvm is PVM (kvm_pvm loaded), under which stock kernels hang")
    return Check(
        "kvm",
        Status.WARN,
        "TCG will be used (slow): " + "; ".join(reasons),
        "; ".join(hints) + ("; " if hints else "") + "HOLOS_ACCEL=kvm|tcg overrides the choice",
    )


def probe_version(name: str, argv: Sequence[str], *, required: bool = True) -> Check:
    """`name` found on PATH and answering `argv` (e.g. --version): its first line."""
    path = shutil.which(argv[0])
    missing = Status.FAIL if required else Status.WARN
    if path is None:
        return Check(name, missing, f"{argv[0]} not found on PATH", _PACKAGES.get(argv[0]))
    try:
        result = run.run([path, *argv[1:]], check=False, timeout=PROBE_TIMEOUT)
    except HolosError as exc:
        return Check(name, missing, f"{path} does not run: {exc}")
    lines = (result.stdout + result.stderr).strip().splitlines()
    first = lines[0].strip() if lines else "(no output)"
    if result.returncode != 0:
        return Check(name, missing, f"{path} exited {result.returncode}: {first}")
    return Check(name, Status.OK, f"{first} ({path})")


_PACKAGES = {
    "qemu-system-x86_64": "apt-get install qemu-system-x86",
    "qemu-img": "apt-get install qemu-utils",
    "ssh": "apt-get install openssh-client",
    "ssh-keygen": "apt-get install openssh-client",
}


def check_which(name: str) -> Check:
    path = shutil.which(name)
    if path is None:
        return Check(name, Status.FAIL, f"{name} not found on PATH", _PACKAGES.get(name))
    return Check(name, Status.OK, path)


def check_ovmf(env: Mapping[str, str]) -> Check:
    """The firmware pair launch.sh would pick; an override must be complete and readable."""
    code, vars_ = env.get("HOLOS_OVMF_CODE", ""), env.get("HOLOS_OVMF_VARS", "")
    if code or vars_:
        if not (code and vars_):
            return Check("ovmf", Status.FAIL, "set both HOLOS_OVMF_CODE and HOLOS_OVMF_VARS")
        bad = [p for p in (code, vars_) if not os.access(p, os.R_OK)]
        if bad:
            return Check("ovmf", Status.FAIL, f"HOLOS_OVMF_* points at unreadable {bad[0]}")
        return Check("ovmf", Status.OK, f"{code} (from HOLOS_OVMF_CODE)")
    for code, vars_ in layout.OVMF_PAIRS:
        if os.access(code, os.R_OK) and os.access(vars_, os.R_OK):
            return Check("ovmf", Status.OK, code)
    return Check(
        "ovmf",
        Status.WARN,
        "no OVMF firmware found; services with vm.uefi or devices will not start",
        "apt-get install ovmf, or set HOLOS_OVMF_CODE and HOLOS_OVMF_VARS",
    )


def check_virtiofsd(env: Mapping[str, str]) -> Check:
    override = env.get("HOLOS_VIRTIOFSD")
    for candidate in (override,) if override else layout.VIRTIOFSD:
        if os.access(candidate, os.X_OK):
            return Check("virtiofsd", Status.OK, candidate)
    where = override or ", ".join(layout.VIRTIOFSD)
    return Check(
        "virtiofsd",
        Status.FAIL if override else Status.WARN,
        f"virtiofsd not found ({where}); bind mounts will not work",
        "apt-get install virtiofsd (or qemu-system-common on Debian 12)",
    )


def check_systemd(
    manager: systemd.Manager, env: Mapping[str, str], pid1: Path = Path("/proc/1/comm")
) -> Check:
    """The manager of the chosen scope answers `is-system-running`."""
    name = f"systemd ({manager.scope})"
    if not env.get("HOLOSC_SYSTEMCTL"):  # a custom systemctl reaches another manager
        try:
            init = pid1.read_text().strip()
        except OSError:
            init = "unknown"
        if init != "systemd":
            return Check(
                name,
                Status.FAIL,
                f"systemd is not PID 1 (PID 1 is {init}): holosc runs VMs as systemd units",
                "use a host (or container) booted with systemd",
            )
    try:
        state = manager.ctl("is-system-running", check=False, timeout=15).stdout.strip()
    except HolosError as exc:
        return Check(name, Status.FAIL, exc.message, "holosc needs systemd and systemctl")
    if state in systemd.REACHABLE:
        return Check(name, Status.OK, f"{shutil.which(manager.systemctl[0])}: {state}")
    hint = (
        "log in, or enable lingering (loginctl enable-linger)" if manager.scope == "user" else None
    )
    return Check(
        name, Status.FAIL, f"manager not reachable (is-system-running: {state or '?'})", hint
    )


def check_linger(user: str | None = None, linger_dir: Path = LINGER_DIR) -> Check:
    """A user manager runs only while its user is logged in, unless lingering is on."""
    user = user or pwd.getpwuid(os.geteuid()).pw_name
    if (linger_dir / user).exists():
        return Check(
            "linger",
            Status.OK,
            f"on for {user}: projects keep running after you log out and "
            "`install --enable` starts them at boot",
        )
    return Check(
        "linger",
        Status.WARN,
        f"off for {user}: your VMs stop when you log out, and `install --enable` "
        "starts nothing at boot",
        f"an administrator runs once: sudo loginctl enable-linger {user}",
    )


def check_helpers(manager: systemd.Manager) -> list[Check]:
    """Units name the helpers bare: systemd finds them in its fixed search path, or in
    this installation's directory, which `install`/`up` name in a drop-in."""
    checks = []
    own = helpers.usable_dir(manager)
    for helper in helpers.HELPERS:
        if own is not None:
            detail = f"{own / helper} (units search {own} first: ExecSearchPath= drop-in)"
            checks.append(Check(helper, Status.OK, detail))
        elif found := helpers.systemd_finds(helper):
            checks.append(Check(helper, Status.OK, str(found)))
        else:
            checks.append(helpers_missing(manager, [helper]))
    return checks


def helpers_missing(manager: systemd.Manager, names: Sequence[str]) -> Check:
    """One failed check for the helpers `names` that no unit could run."""
    detail = f"not in systemd's search path {helpers.SYSTEMD_PATH}"
    elsewhere = helpers.installed_dir()
    if elsewhere is None:
        hint = "reinstall holosc with its helpers (pip install, pipx install or scripts/setup.sh)"
    elif manager.scope == "system" and not helpers.trusted_by_root(elsewhere):
        detail += (
            f"; this holosc's are in {elsewhere}, which the system manager must not run "
            "(not root's, or writable by others)"
        )
        hint = (
            "use your own manager (holosc --user, the default for non-root users), or "
            "install holosc as root (a root-owned venv, or pipx --global)"
        )
    else:
        detail += f"; this holosc's are in {elsewhere}, a path ExecSearchPath= cannot carry"
        hint = "install holosc into a directory whose path has no ':', '%' or '\\'"
    return Check(", ".join(names), Status.FAIL, detail, hint)


# What %S/holos holds; systemd before 254 resolved a user manager's %S to %E.


def check_roots(manager: systemd.Manager) -> list[Check]:
    """The directories the manager resolves, and state left where an older %S pointed."""
    name = f"roots ({manager.scope})"
    try:
        dirs = {
            "units": manager.unit_dir,
            str(layout.STATE): manager.state_dir,
            str(layout.CONFIG): manager.config_dir,
            str(layout.RUNTIME): manager.runtime_dir,
        }
    except HolosError as exc:
        hint = exc.diagnostics[0].hint if exc.diagnostics else None
        return [Check(name, Status.FAIL, exc.message, hint)]
    overridden = [v for v in (*systemd.OVERRIDES.values(), "HOLOSC_UNIT_DIR") if manager.env.get(v)]
    detail = ", ".join(f"{k} {v}" for k, v in dirs.items())
    if overridden:
        detail += f" ({', '.join(sorted(overridden))} set)"
    checks = [Check(name, Status.OK, detail)]
    old = manager.config_dir
    if old != manager.state_dir:
        left = [
            old / e
            for e in layout.STATE_ENTRIES
            if (old / e).is_dir() and not (old / e / "installed.json").exists()
        ]
        if left:
            checks.append(
                Check(
                    "old state",
                    Status.WARN,
                    f"{', '.join(map(str, left))} left where an older systemd's %S pointed; "
                    f"units now use {manager.state_dir}",
                    "stop the projects (holosc stop), then: "
                    f"mkdir -p {manager.state_dir} && mv -n {' '.join(map(str, left))} "
                    f"{manager.state_dir}/ (docs/units.md)",
                )
            )
    return checks


def check_state_dir(root: Path) -> Check:
    """Create the state root (0700) if needed and write a file in it."""
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(
            "state dir",
            Status.FAIL,
            f"{root} is not writable: {exc.strerror}",
            "set HOLOSC_STATE_DIR, or run with the scope that owns it",
        )
    return Check("state dir", Status.OK, f"{root} is writable")


def check_iommu(groups: Path = Path("/sys/kernel/iommu_groups")) -> Check:
    try:
        count = len(os.listdir(groups))
    except OSError:
        count = 0
    if count:
        return Check("iommu", Status.OK, f"{count} IOMMU groups")
    return Check(
        "iommu",
        Status.WARN,
        "IOMMU is off; PCI passthrough (devices:) will not work",
        "boot with intel_iommu=on or amd_iommu=on (and enable VT-d/AMD-Vi in the firmware)",
    )


def run_checks(
    scope: str | None = None,
    env: Mapping[str, str] | None = None,
    kvm_facts: Callable[[], KvmFacts] = read_kvm_facts,
) -> list[Check]:
    """Every check, in report order."""
    env = os.environ if env is None else env
    manager = systemd.manager(scope, env)
    return [
        check_kvm(kvm_facts()),
        probe_version("qemu-system-x86_64", ["qemu-system-x86_64", "--version"]),
        probe_version("qemu-img", ["qemu-img", "--version"]),
        probe_version("ssh", ["ssh", "-V"]),
        check_which("ssh-keygen"),
        check_ovmf(env),
        check_virtiofsd(env),
        check_systemd(manager, env),
        *([check_linger()] if manager.scope == "user" else []),
        *check_helpers(manager),
        *check_roots(manager),
        _check_state_dir(manager),
        check_iommu(),
    ]


def _check_state_dir(manager: systemd.Manager) -> Check:
    try:
        return check_state_dir(manager.state_dir)
    except HolosError as exc:
        return Check("state dir", Status.FAIL, f"unknown: {exc.message}")


def verdict(checks: Sequence[Check]) -> str:
    failed = [c.name for c in checks if c.status is Status.FAIL]
    if failed:
        return f"not ready: {len(failed)} required check(s) failed ({', '.join(failed)})"
    if any(c.status is Status.WARN for c in checks):
        return "ready, with warnings"
    return "ready"


def preflight(manager: systemd.Manager, env: Mapping[str, str] | None = None) -> list[Check]:
    """What `up` checks before it starts anything: the failures among doctor's checks
    that stop every VM (no KVM is only slow). The helpers make one line between them."""
    env = os.environ if env is None else env
    checks = [
        check_which("qemu-system-x86_64"),
        check_which("qemu-img"),
        check_which("ssh-keygen"),
        check_systemd(manager, env),
    ]
    failed = [c for c in checks if c.status is Status.FAIL]
    lost = [c.name for c in check_helpers(manager) if c.status is Status.FAIL]
    if lost:
        failed.append(helpers_missing(manager, lost))
    return failed
