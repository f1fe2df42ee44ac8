"""holos-seed: the per-host NoCloud seed built at start from the compiled texts (no mocks:
real ssh-keygen, pycdlib, isoinfo reading the ISO back, cloud-init's schema check)."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.conftest import GOLDEN, cloud_config_verdict, require_tool

TEXTS = GOLDEN / "three-tier" / "shop" / "web-1"


def seed(
    host: Path, *, instance: str = "web-1", texts: Path = TEXTS
) -> subprocess.CompletedProcess[str]:
    """Run the helper as the unit's ExecStartPre does, on a "host" rooted at `host`."""
    state = host / "instances" / "shop" / instance
    state.mkdir(parents=True, exist_ok=True)
    (host / "run").mkdir(exist_ok=True)
    argv = [
        sys.executable, "-m", "holos_runtime.seed", "--instance", instance,
        "--seed-dir", str(texts), "--state", str(state),
        "--key", str(host / "ssh" / "shop" / "id_ed25519"),
        "--alias", f"{instance}.shop.holos", "--out", str(host / "run" / f"{instance}.iso"),
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def read_iso(iso: Path, name: str) -> str:
    isoinfo = require_tool("isoinfo")
    return subprocess.run(
        [isoinfo, "-i", str(iso), "-R", "-x", f"/{name}"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip


def test_seed_joins_committed_texts_and_host_keys(tmp_path: Path) -> None:
    result = seed(tmp_path)
    assert result.returncode == 0, result.stderr
    iso = tmp_path / "run" / "web-1.iso"
    for name in ("user-data", "meta-data", "network-config"):
        assert read_iso(iso, name) == (TEXTS / name).read_text(), name
    vendor = read_iso(iso, "vendor-data")
    assert vendor.startswith("#cloud-config\n")
    doc = yaml.safe_load(vendor)
    project_pub = (tmp_path / "ssh" / "shop" / "id_ed25519.pub").read_text().strip()
    state = tmp_path / "instances" / "shop" / "web-1"
    host_pub = (state / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    assert doc["ssh_authorized_keys"] == [project_pub]
    assert doc["ssh_keys"]["ed25519_private"] == (state / "ssh_host_ed25519_key").read_text()
    assert doc["ssh_keys"]["ed25519_public"] == " ".join(host_pub)
    assert (state / "known_hosts").read_text() == f"web-1.shop.holos {' '.join(host_pub)}\n"
    # cloud-init accepts it (the same check the compiled user-data passes).
    (tmp_path / "vendor-data").write_text(vendor)
    assert not (verdict := cloud_config_verdict(tmp_path / "vendor-data")), verdict
    assert "web-1: seed ready in" in result.stderr


def test_private_material_is_private_and_outside_the_texts(tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in TEXTS.iterdir()}
    assert seed(tmp_path).returncode == 0
    assert {p: p.read_bytes() for p in TEXTS.iterdir()} == before, "compiled texts untouched"
    state = tmp_path / "instances" / "shop" / "web-1"
    assert (tmp_path / "run" / "web-1.iso").stat().st_mode & 0o777 == 0o600
    assert (state / "ssh_host_ed25519_key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ssh" / "shop" / "id_ed25519").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ssh" / "shop").stat().st_mode & 0o777 == 0o700


def test_same_host_same_bytes_other_host_other_keys(tmp_path: Path) -> None:
    """Restarts rebuild the identical seed (keys are kept); a second host running the
    same compiled texts gets its own project key and host key."""
    assert seed(tmp_path / "a").returncode == 0
    first = (tmp_path / "a" / "run" / "web-1.iso").read_bytes()
    assert seed(tmp_path / "a").returncode == 0
    assert (tmp_path / "a" / "run" / "web-1.iso").read_bytes() == first
    assert seed(tmp_path / "b").returncode == 0
    other = tmp_path / "b" / "run" / "web-1.iso"
    assert read_iso(other, "user-data") == read_iso(
        tmp_path / "a" / "run" / "web-1.iso", "user-data"
    )
    keys = [
        json.dumps(yaml.safe_load(read_iso(tmp_path / h / "run" / "web-1.iso", "vendor-data")))
        for h in ("a", "b")
    ]
    assert keys[0] != keys[1]
    for name in ("ssh/shop/id_ed25519.pub", "instances/shop/web-1/ssh_host_ed25519_key.pub"):
        assert (tmp_path / "a" / name).read_text() != (tmp_path / "b" / name).read_text()


def test_replicas_starting_together_share_one_project_key(tmp_path: Path) -> None:
    instances = [f"web-{i}" for i in range(6)]
    with ThreadPoolExecutor(len(instances)) as pool:
        results = list(pool.map(lambda i: seed(tmp_path, instance=i), instances))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    project_pub = (tmp_path / "ssh" / "shop" / "id_ed25519.pub").read_text().strip()
    for inst in instances:
        vendor = yaml.safe_load(read_iso(tmp_path / "run" / f"{inst}.iso", "vendor-data"))
        assert vendor["ssh_authorized_keys"] == [project_pub], inst


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed-dir", "relative"], "--seed-dir must be an absolute path"),
        (["--alias", "two words"], "--alias must be one host-name-like word"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    base = {
        "--instance": "web-1", "--seed-dir": str(TEXTS), "--state": str(tmp_path),
        "--key": str(tmp_path / "k"), "--alias": "a", "--out": str(tmp_path / "o.iso"),
    }  # fmt: skip
    base |= dict(zip(args[::2], args[1::2], strict=True))
    argv = [x for pair in base.items() for x in pair]
    result = subprocess.run(
        [sys.executable, "-m", "holos_runtime.seed", *argv],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_missing_texts_fail_clearly(tmp_path: Path) -> None:
    result = seed(tmp_path, texts=tmp_path / "not-installed")
    assert result.returncode == 1
    assert "cannot read the compiled meta-data" in result.stderr, result.stderr
    assert not (tmp_path / "run" / "web-1.iso").exists()
