"""`holosc doctor` on this machine, checked against facts the test reads itself, plus the
individual checks on inputs the test controls (files, environment)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from holosc.core import layout
from holosc.errors import HolosError
from holosc.host import systemd
from holosc.tools import doctor as D
from tests.conftest import REPO, run_holosc


def holosc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_holosc("doctor", *args, env=env)


def kvm_really_usable() -> bool:
    """The launch script's rule, read independently of holosc."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError:
        return False
    cpuinfo = Path("/proc/cpuinfo").read_text()
    return bool(re.search(r"\b(vmx|svm)\b", cpuinfo)) and not Path("/sys/module/kvm_pvm").exists()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    state = tmp_path_factory.mktemp("state")
    result = holosc("--json", HOLOSC_STATE_DIR=str(state))
    checks: list[dict[str, Any]] = json.loads(result.stdout)
    failed = any(c["status"] == "fail" for c in checks)
    assert result.returncode == (1 if failed else 0), result.stderr
    return checks


def test_json_is_a_list_of_checks(report: list[dict[str, Any]]) -> None:
    names = [c["name"] for c in report]
    assert names[:7] == [
        "kvm",
        "qemu-system-x86_64",
        "qemu-img",
        "ssh",
        "ssh-keygen",
        "ovmf",
        "virtiofsd",
    ]
    assert names[7].startswith("systemd (")
    assert names[8:16] == [
        "holos-qmp-stop",
        "holos-health",
        "holos-seed",
        "holos-image",
        "holos-bake",
        "holos-console-log",
        "holos-switch",
        names[7].replace("systemd", "roots"),
    ]
    assert [n for n in names[16:] if n != "old state"] == ["state dir", "iommu"]
    for check in report:
        assert set(check) == {"name", "status", "detail", "hint"}
        assert check["status"] in ("ok", "warn", "fail") and check["detail"]


def test_kvm_verdict_matches_the_host(report: list[dict[str, Any]]) -> None:
    kvm = report[0]
    if kvm_really_usable():
        assert kvm["status"] == "ok"
    else:  # these CI machines: /dev/kvm is PVM, no vmx/svm
        assert kvm["status"] == "warn"
        assert kvm["detail"].startswith("TCG will be used (slow): ")
    if Path("/sys/module/kvm_pvm").exists():
        assert "PVM" in kvm["detail"]


def test_other_checks_match_the_host(report: list[dict[str, Any]]) -> None:
    by_name = {c["name"]: c for c in report}
    qemu = by_name["qemu-system-x86_64"]
    assert qemu["status"] == "ok" and qemu["detail"].startswith("QEMU emulator version")
    assert by_name["qemu-img"]["detail"].startswith("qemu-img version")
    assert by_name["state dir"]["status"] == "ok"
    groups = Path("/sys/kernel/iommu_groups")
    has_groups = groups.is_dir() and any(groups.iterdir())
    assert by_name["iommu"]["status"] == ("ok" if has_groups else "warn")
    systemd_check = next(c for c in report if c["name"].startswith("systemd ("))
    if Path("/proc/1/comm").read_text().strip() != "systemd":
        assert systemd_check["status"] == "fail"
        assert "systemd is not PID 1" in systemd_check["detail"]


def test_text_report_agrees_with_json(report: list[dict[str, Any]], tmp_path: Path) -> None:
    result = holosc(HOLOSC_STATE_DIR=str(tmp_path))
    lines = result.stdout.splitlines()
    assert len(lines) == len(report) + 1
    for line, check in zip(lines, report, strict=False):
        assert line.split()[0] == check["status"]
        assert check["name"] in line
    failed = [c["name"] for c in report if c["status"] == "fail"]
    assert lines[-1].startswith("verdict: " + ("not ready" if failed else "ready"))
    assert result.returncode == (1 if failed else 0)


def test_kvm_facts_from_files(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic vmx ept\n")
    modules = tmp_path / "module"
    (modules / "kvm").mkdir(parents=True)
    device = tmp_path / "kvm"
    device.write_text("")  # a file opens read-write like a usable device node
    facts = D.read_kvm_facts(device, cpuinfo, modules)
    assert facts.usable and facts.cpu_flag == "vmx"
    assert D.check_kvm(facts).status is D.Status.OK
    (modules / "kvm_pvm").mkdir()
    pvm = D.check_kvm(D.read_kvm_facts(device, cpuinfo, modules))
    assert pvm.status is D.Status.WARN and "PVM" in pvm.detail
    missing = D.check_kvm(D.read_kvm_facts(tmp_path / "nope", tmp_path / "nope", modules))
    assert "there is no /dev/kvm" in missing.detail and "no vmx/svm" in missing.detail


def test_ovmf_overrides_must_be_complete_and_readable(tmp_path: Path) -> None:
    code, vars_ = tmp_path / "CODE.fd", tmp_path / "VARS.fd"
    code.write_bytes(b"x")
    vars_.write_bytes(b"x")
    half = D.check_ovmf({"HOLOS_OVMF_CODE": str(code)})
    assert half.status is D.Status.FAIL
    both = D.check_ovmf({"HOLOS_OVMF_CODE": str(code), "HOLOS_OVMF_VARS": str(vars_)})
    assert both.status is D.Status.OK
    gone = D.check_ovmf({"HOLOS_OVMF_CODE": str(code), "HOLOS_OVMF_VARS": str(tmp_path / "x")})
    assert gone.status is D.Status.FAIL
    assert D.check_virtiofsd({"HOLOS_VIRTIOFSD": str(tmp_path / "x")}).status is D.Status.FAIL


def test_state_dir_that_cannot_be_created_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert D.check_state_dir(blocker / "holos").status is D.Status.FAIL
    assert D.check_state_dir(tmp_path / "new" / "holos").status is D.Status.OK
    assert (tmp_path / "new" / "holos").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("state", "status"),
    [("running", "ok"), ("degraded", "ok"), ("starting", "ok"), ("offline", "fail")],
)
def test_systemd_states(tmp_path: Path, state: str, status: str) -> None:
    """A custom HOLOSC_SYSTEMCTL (how tests reach a private systemd) skips the PID 1 test."""
    script = tmp_path / "systemctl"
    script.write_text(f"#!/bin/sh\necho {state}\n")
    script.chmod(0o755)
    env = {"HOLOSC_SYSTEMCTL": str(script)}
    check = D.check_systemd(systemd.manager("system", env), env)
    assert check.status == status, check


def test_no_systemd_as_pid_1_fails_clearly(tmp_path: Path) -> None:
    comm = tmp_path / "comm"
    comm.write_text("bash\n")
    check = D.check_systemd(systemd.manager("system", {}), {}, pid1=comm)
    assert check.status is D.Status.FAIL
    assert check.detail.startswith("systemd is not PID 1 (PID 1 is bash)")


def test_verdict() -> None:
    ok = D.Check("a", D.Status.OK, "fine")
    warn = D.Check("b", D.Status.WARN, "slow")
    fail = D.Check("c", D.Status.FAIL, "broken")
    assert D.verdict([ok]) == "ready"
    assert D.verdict([ok, warn]) == "ready, with warnings"
    assert D.verdict([ok, warn, fail]) == "not ready: 1 required check(s) failed (c)"


def test_firmware_and_virtiofsd_candidates_match_the_launch_script() -> None:
    """doctor must look where the generated launch scripts look (one list, in layout)."""
    gpu = (REPO / "golden" / "gpu" / "ml" / "trainer-0" / "launch.sh").read_text()
    pairs = re.findall(r"(/usr/share/\S+?\.fd):(/usr/share/\S+?\.fd)", gpu)
    assert tuple(pairs) == layout.OVMF_PAIRS
    volumes = (REPO / "golden" / "volumes" / "notes" / "db-0" / "launch.sh").read_text()
    loop = re.search(r"for candidate in ([^;]+);", volumes)
    assert loop is not None and tuple(loop[1].split()) == layout.VIRTIOFSD


# UnitPath of systemd 257's managers, as measured in a booted Debian 13 container.
USER_UNIT_PATH_257 = (
    "/home/holos/.config/systemd/user.control /run/user/1500/systemd/user.control "
    "/run/user/1500/systemd/transient /run/user/1500/systemd/generator.early "
    "/home/holos/.config/systemd/user /etc/systemd/user /run/user/1500/systemd/user "
    "/run/systemd/user /home/holos/.local/share/systemd/user /usr/lib/systemd/user"
)
SYSTEM_UNIT_PATH = (
    "/etc/systemd/system.control /run/systemd/system.control /run/systemd/transient "
    "/run/systemd/generator.early /etc/systemd/system /etc/systemd/system.attached "
    "/run/systemd/system /run/systemd/generator /usr/lib/systemd/system"
)


def test_unit_dir_is_the_first_persistent_entry_of_unit_path() -> None:
    def first(text: str, scope: str) -> Path:
        return systemd.unit_dir_from([Path(p) for p in text.split()], scope)

    assert first(USER_UNIT_PATH_257, "user") == Path("/home/holos/.config/systemd/user")
    assert first(SYSTEM_UNIT_PATH, "system") == Path("/etc/systemd/system")
    with pytest.raises(HolosError, match="no persistent unit directory"):
        first("/run/systemd/transient /usr/lib/systemd/system", "system")


def test_unreachable_manager_is_a_failed_roots_check(tmp_path: Path) -> None:
    env = {"HOLOSC_SYSTEMCTL": "false"}
    checks = D.check_roots(systemd.manager("user", env))
    assert [c.status for c in checks] == [D.Status.FAIL]
    assert checks[0].detail.startswith("cannot ask the user manager where its directories are")
    assert "HOLOSC_STATE_DIR" in (checks[0].hint or "")


def test_state_left_where_the_old_percent_s_pointed_is_a_warning(tmp_path: Path) -> None:
    env = {
        "HOLOSC_SYSTEMCTL": "false",  # nothing is asked: every root is given
        "HOLOSC_UNIT_DIR": str(tmp_path / "units"),
        "HOLOSC_CONFIG_DIR": str(tmp_path / "config" / "holos"),
        "HOLOSC_STATE_DIR": str(tmp_path / "state" / "holos"),
        "HOLOSC_RUNTIME_DIR": str(tmp_path / "run" / "holos"),
    }
    config = tmp_path / "config" / "holos"
    (config / "ssh").mkdir(parents=True)  # a project named "ssh": not state
    (config / "ssh" / "installed.json").write_text("{}")
    checks = D.check_roots(systemd.manager("user", env))
    assert [c.status for c in checks] == [D.Status.OK]
    assert checks[0].detail.endswith(
        "(HOLOSC_CONFIG_DIR, HOLOSC_RUNTIME_DIR, HOLOSC_STATE_DIR, HOLOSC_UNIT_DIR set)"
    )
    (config / "images").mkdir()
    (config / "instances").mkdir()
    old = D.check_roots(systemd.manager("user", env))[1]
    assert old.status is D.Status.WARN and old.name == "old state"
    assert old.detail == (
        f"{config / 'images'}, {config / 'instances'} left where an older systemd's %S "
        f"pointed; units now use {tmp_path / 'state' / 'holos'}"
    )
    assert f"mv -n {config / 'images'} {config / 'instances'} {tmp_path / 'state' / 'holos'}/" in (
        old.hint or ""
    )


def test_kvm_tells_a_user_what_they_lack(tmp_path: Path) -> None:
    no_device = D.check_kvm(D.KvmFacts(False, "No such file or directory", "vmx", False, False))
    assert no_device.status is D.Status.WARN
    assert no_device.detail == "TCG will be used (slow): there is no /dev/kvm"
    not_member = D.check_kvm(D.KvmFacts(False, "Permission denied", "vmx", False, True, "kvm"))
    assert "you are not in the kvm group, which owns /dev/kvm" in not_member.detail
    assert (not_member.hint or "").startswith("sudo usermod -aG kvm $USER")
    device = tmp_path / "kvm"
    device.write_text("")
    os.chown(device, -1, 54321)  # a group this process is not in
    assert D._foreign_group(device) == "54321"
    os.chown(device, -1, os.getegid())
    assert D._foreign_group(device) is None


def test_kvm_hint_fits_the_cpu() -> None:
    """A CPU without vmx/svm gets no module to load (no module helps it); one with vmx
    but no /dev/kvm is told which module."""
    bare = D.check_kvm(D.KvmFacts(False, "No such file or directory", None, False, False))
    assert "modprobe" not in (bare.hint or "") and "kvm_intel" not in (bare.hint or "")
    assert (bare.hint or "").startswith("enable VT-x/AMD-V in the firmware")
    intel = D.check_kvm(D.KvmFacts(False, "No such file or directory", "vmx", False, False))
    assert (intel.hint or "").startswith("modprobe kvm_intel")
    amd = D.check_kvm(D.KvmFacts(False, "No such file or directory", "svm", False, False))
    assert (amd.hint or "").startswith("modprobe kvm_amd")


def test_linger_says_whether_projects_outlive_the_login(tmp_path: Path) -> None:
    off = D.check_linger("alice", tmp_path)
    assert off.status is D.Status.WARN and off.detail.startswith("off for alice:")
    assert off.hint == "an administrator runs once: sudo loginctl enable-linger alice"
    (tmp_path / "alice").touch()  # what `loginctl enable-linger alice` creates
    on = D.check_linger("alice", tmp_path)
    assert on.status is D.Status.OK and on.detail.startswith("on for alice:")
