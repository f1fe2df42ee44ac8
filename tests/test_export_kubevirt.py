"""`holosc export kubevirt`: golden manifests, schema validation, the cloud-init round
trip against `build`, one fixture per mapping and per error, and the command line.

No cluster runs here (docs/kubevirt.md): the manifests are checked against KubeVirt's and
CDI's CRD schemas (jsonschema) and Kubernetes' own (kubernetes-validate), the user-data
by cloud-init's schema, and their meaning by docs/kubevirt.md's mapping table, which the
fixtures in tests/export-cases/ pin field by field.

Regenerate golden-export/ after an intended change with
`HOLOSC_UPDATE_GOLDEN=1 pytest tests/test_export_kubevirt.py` and review the diff.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from holosc.core import plan as P
from holosc.core.model import MountKind, Project
from holosc.core.render import cloudinit, hosts, secrets
from holosc.errors import HolosError
from holosc.export import userdata
from holosc.export.kubevirt import LOCK_FILE, Export, Manifest, Options, export_project
from tests.conftest import EXAMPLES, REPO, example_names, require_tool, run_holosc
from tests.kubevirt import (
    CASES,
    GOLDEN,
    case_names,
    case_options,
    comment_words,
    export_example,
    load_case,
    schema_errors,
)

UPDATE = os.environ.get("HOLOSC_UPDATE_GOLDEN") == "1"
HOW = "regenerate with: HOLOSC_UPDATE_GOLDEN=1 pytest tests/test_export_kubevirt.py"


def exports() -> list[tuple[str, Project, Export]]:
    """Every example and every successful fixture, exported."""
    out = []
    for name in example_names():
        result, export = export_example(name)
        out.append((f"examples/{name}", result.project, export))
    for case in case_names(errors=False):
        doc, result = load_case(CASES / case)
        text = (CASES / case).read_text()
        out.append(
            (
                f"export-cases/{case}",
                result.project,
                export_project(result.project, case_options(text), doc),
            )
        )
    return out


EXPORTS = exports()
IDS = [label for label, _, _ in EXPORTS]


# -- golden files -----------------------------------------------------------------------


@pytest.mark.parametrize("name", example_names())
def test_example_matches_golden(name: str) -> None:
    _, export = export_example(name)
    files = {str(p): f.data for p, f in export.output().files.items()}
    expected_dir = GOLDEN / name
    if UPDATE:
        shutil.rmtree(expected_dir, ignore_errors=True)
        expected_dir.mkdir(parents=True)
        for path, data in files.items():
            (expected_dir / path).write_bytes(data)
    expected = {p.name for p in expected_dir.iterdir()}
    assert set(files) == expected, f"golden-export/{name} differs in files; {HOW}"
    for path, data in files.items():
        want = (expected_dir / path).read_bytes()
        if want != data:
            delta = "".join(
                difflib.unified_diff(
                    want.decode().splitlines(True),
                    data.decode().splitlines(True),
                    f"golden-export/{name}/{path}",
                    f"exported/{path}",
                )
            )
            pytest.fail(f"{path} differs:\n{delta}\n{HOW}")


def test_every_example_exports() -> None:
    assert {label for label in IDS if label.startswith("examples/")} == {
        f"examples/{n}" for n in example_names()
    }


# -- schemas ------------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "project", "export"), EXPORTS, ids=IDS)
def test_every_manifest_validates(label: str, project: Project, export: Export) -> None:
    kinds = set()
    for manifest in export.manifests:
        assert schema_errors(manifest.body) == [], f"{label}: {manifest.file_name}"
        # The text written is the body: it loads back to the same data.
        assert yaml.safe_load(manifest.text()) == manifest.body
        kinds.add(manifest.kind)
    assert {"Namespace", "Service"} <= kinds
    assert kinds & {"VirtualMachine", "VirtualMachinePool"}


def test_validation_catches_what_the_cluster_would_reject() -> None:
    """The validators are not vacuous: a misspelt field or a wrong type fails each kind."""
    _, export = export_example("three-tier")
    by_kind = {m.kind: m.body for m in export.manifests}
    vm = copy.deepcopy(by_kind["VirtualMachine"])
    vm["spec"]["template"]["spec"]["domain"]["cpu"]["coers"] = 2
    pool = copy.deepcopy(by_kind["VirtualMachinePool"])
    pool["spec"]["replicas"] = "two"
    service = copy.deepcopy(by_kind["Service"])
    service["spec"]["selectr"] = {}
    namespace = copy.deepcopy(by_kind["Namespace"])
    namespace["metadata"]["labels"] = ["not", "a", "map"]
    _, volumes = export_example("volumes")
    by_kind |= {m.kind: m.body for m in volumes.manifests}
    dv = copy.deepcopy(by_kind["DataVolume"])
    dv["spec"]["source"]["upload"] = "yes"
    pvc = copy.deepcopy(by_kind["PersistentVolumeClaim"])
    pvc["spec"]["accessModes"] = "ReadWriteOnce"
    for body in (vm, pool, service, namespace, dv, pvc):
        assert schema_errors(body), body["kind"]


def test_no_key_material_in_any_manifest(tmp_path: Path) -> None:
    """The project key reaches VMs through a Secret the user creates; no key is exported,
    even when the command line names one."""
    for label, _, export in EXPORTS:
        assert "PRIVATE KEY" not in export.stream(), label
    key = tmp_path / "id_ed25519"
    subprocess.run(
        [require_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
        check=True,
        timeout=60,
    )
    run = holosc(
        "export",
        "kubevirt",
        "-f",
        str(EXAMPLES / "three-tier" / "holos.yaml"),
        env={"HOLOSC_SSH_KEY": str(key)},
    )
    assert run.returncode == 0, run.stderr
    assert key.with_suffix(".pub").read_text().split()[1] not in run.stdout
    assert "PRIVATE KEY" not in run.stdout
    assert f"--from-file=key={key}.pub" in run.stderr


# -- cloud-init: the same as `build`, except the documented differences -----------------


def expected_user_data(project: Project, inst: P.Instance) -> dict[str, Any]:
    """`build`'s user-data of `inst` with docs/kubevirt.md's differences applied, written
    independently of holosc/export/userdata.py."""
    plan = P.build_plan(project)
    # A cluster has no builder VM: a Dockerfile runs at first boot there (docs/kubevirt.md).
    doc = cloudinit.user_data_doc(plan, inst, first_boot_build=True)
    service = inst.service
    del doc["hostname"]  # from KubeVirt's meta-data (the VMI's name)
    doc["manage_etc_hosts"] = "localhost"  # names through cluster DNS
    doc["package_update"] = True
    packages = doc.get("packages", [])
    doc["packages"] = packages + ["qemu-guest-agent"] * ("qemu-guest-agent" not in packages)
    boot = [c for c in doc.get("bootcmd", []) if c != secrets.guest_command(service)]
    boot = [c for c in boot if c != hosts.boot_command(service)]  # peers through cluster DNS
    if service.extra_hosts:  # ... but the service's own lines stay, with no peer list
        boot.insert(0, hosts.boot_command(service, lists=0))
    doc.pop("bootcmd", None)
    if boot:
        doc["bootcmd"] = boot
    binds = service.binds
    bind_lines = [cloudinit.mount_command(m, binds.index(m)) for m in binds]
    runcmd = [c for c in doc.get("runcmd", []) if c not in bind_lines]
    agent = (
        "rc-update add qemu-guest-agent default && rc-service qemu-guest-agent start"
        if service.image.os == "openrc"
        else "systemctl start qemu-guest-agent"
    )
    waits = [
        f"timeout 600 sh -c 'until getent hosts {d.service} >/dev/null; do sleep 2; done' || "
        f"{{ echo 'holos: {d.service} did not become ready within 600 s' >&2; exit 1; }}"
        for d in service.depends_on
    ]
    doc["runcmd"] = [agent, *waits, *runcmd]
    return doc  # type: ignore[no-any-return]


def exported_user_data(manifest: Manifest) -> str:
    spec = manifest.body["spec"]
    if manifest.kind == "VirtualMachinePool":
        spec = spec["virtualMachineTemplate"]["spec"]
    volumes = spec["template"]["spec"]["volumes"]
    (text,) = [v["cloudInitNoCloud"]["userData"] for v in volumes if "cloudInitNoCloud" in v]
    return str(text)


def vm_manifest(export: Export, service: str) -> Manifest:
    (found,) = [
        m
        for m in export.manifests
        if m.kind in ("VirtualMachine", "VirtualMachinePool")
        and m.body["metadata"]["labels"]["app.kubernetes.io/name"] == service
    ]
    return found


@pytest.mark.parametrize(("label", "project", "export"), EXPORTS, ids=IDS)
def test_cloud_init_round_trip(label: str, project: Project, export: Export) -> None:
    plan = P.build_plan(project)
    checked = 0
    for inst in plan.instances:
        text = exported_user_data(vm_manifest(export, inst.service.name))
        assert text.startswith("#cloud-config\n")
        assert yaml.safe_load(text) == expected_user_data(project, inst), inst.name
        checked += 1
    assert checked == sum(s.replicas for s in project.services)


def test_cloud_init_schema_accepts_exported_user_data(tmp_path: Path) -> None:
    """Every exported user-data passes cloud-init's schema check, or fails it exactly as
    `build`'s user-data of the same instance does (the export adds no error of its own)."""
    tool = require_tool("cloud-init")

    def schema(text: str) -> tuple[int, set[str]]:
        """Exit code and the keys cloud-init's schema errors name (e.g. `users.0`)."""
        path = tmp_path / "user-data"
        path.write_text(text)
        result = subprocess.run(
            [tool, "schema", "-c", str(path)], capture_output=True, text=True, timeout=120
        )
        errors = re.findall(r"schema errors: (.*)", result.stdout + result.stderr)
        return result.returncode, {k for e in errors for k in re.findall(r"(?:^|, )([\w.]+): ", e)}

    checked = 0
    for label, project, export in EXPORTS:
        plan = P.build_plan(project)
        for service in project.services:
            code, out = schema(exported_user_data(vm_manifest(export, service.name)))
            if code != 0:
                built = cloudinit.user_data(plan, plan.of(service)[0])
                assert schema(built) == (code, out), f"{label} {service.name}: {out}"
            checked += 1
    assert checked >= 20


def test_named_volume_lines_unchanged_bind_lines_gone() -> None:
    """A volume's disk keeps serial vol-<name>, so build's mount line finds it unchanged."""
    _, export = export_example("volumes")
    text = exported_user_data(vm_manifest(export, "db"))
    assert "/dev/disk/by-id/virtio-vol-pgdata /var/lib/postgresql ext4" in text
    assert "virtiofs" not in text
    disks = vm_manifest(export, "db").body["spec"]["template"]["spec"]["domain"]["devices"]
    assert {"name": "vol-pgdata", "serial": "vol-pgdata", "disk": {"bus": "virtio"}} in disks[
        "disks"
    ]
    assert any(
        m.kind is MountKind.BIND
        for s in export_example("volumes")[0].project.services
        for m in s.mounts
    )


def test_user_data_module_matches_its_docstring_list() -> None:
    """userdata.py names six differences; docs/kubevirt.md lists the same six."""
    doc = (REPO / "docs" / "kubevirt.md").read_text()
    listed = [
        line
        for line in (userdata.__doc__ or "").splitlines()
        if line[:2] in {"1.", "2.", "3.", "4.", "5.", "6."}
    ]
    assert len(listed) == 6
    assert "\n7. " not in doc
    for n in range(1, 7):
        assert f"\n{n}. " in doc, f"docs/kubevirt.md lacks difference {n}"


def test_mapping_table_counts_are_true() -> None:
    doc = (REPO / "docs" / "kubevirt.md").read_text()
    table = doc[doc.index("## Field-by-field") : doc.index("Counted over")]
    verdicts: dict[str, int] = {}
    for row in table.splitlines()[1:]:
        if row.startswith("| ") and not row.startswith(("| holos.yaml", "|---")):
            verdict = row.rstrip(" |").split("|")[-1].split()[0].rstrip(":")
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
    counts = re.search(r"(\d+) map, (\d+) map partly, (\d+) do not map", doc)
    assert counts, "docs/kubevirt.md states no counts"
    assert verdicts == {
        "maps": int(counts[1]),
        "partly": int(counts[2]),
        "no": int(counts[3]),
        "(option)": 2,
    }


# -- fixtures: one per mapping and per error ----------------------------------------------


def pointer(body: Any, path: str) -> Any:
    """The value at JSON pointer `path` (RFC 6901), or KeyError."""
    for raw in path.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        body = body[int(part)] if isinstance(body, list) else body[part]
    return body


def find(export: Export, ref: str) -> Manifest:
    kind, _, name = ref.partition("/")
    found = [m for m in export.manifests if m.kind == kind and m.name == name]
    assert found, f"no {ref} in {[f'{m.kind}/{m.name}' for m in export.manifests]}"
    return found[0]


def check(verb: str, args: list[str], export: Export) -> bool:
    if verb == "assert-manifests":
        return sorted(f"{m.kind}/{m.name}" for m in export.manifests) == sorted(args)
    if verb == "assert-value":
        try:
            value = pointer(find(export, args[0]).body, args[1])
        except (KeyError, IndexError):
            return False
        return bool(value == json.loads(args[2]))
    if verb == "assert-has":
        try:
            pointer(find(export, args[0]).body, args[1])
        except (KeyError, IndexError):
            return False
        return True
    if verb == "assert-userdata":
        return args[1] in exported_user_data(find(export, args[0]))
    if verb == "assert-runcmd":
        return args[1] in yaml.safe_load(exported_user_data(find(export, args[0])))["runcmd"]
    if verb == "assert-comment":
        return any(args[1] in c for c in find(export, args[0]).comments)
    if verb == "assert-warning":
        return args[0] in [str(w) for w in export.warnings]
    if verb == "assert-note":
        return any(args[0] in n for n in export.notes)
    raise AssertionError(f"unknown verb {verb}")


@pytest.mark.parametrize("case", case_names(errors=False))
def test_export_case(case: str) -> None:
    text = (CASES / case).read_text()
    doc, result = load_case(CASES / case)
    export = export_project(result.project, case_options(text), doc)
    assertions = [w for w in comment_words(text) if w[0].lstrip("!").startswith("assert-")]
    assert assertions, f"{case} has no assertions"
    if not any(w[0] == "assert-warning" for w in assertions):
        assert not export.warnings, [str(w) for w in export.warnings]
    for words in assertions:
        verb, args = words[0], words[1:]
        negate = verb.startswith("!")
        ok = check(verb.lstrip("!"), args, export)
        assert ok != negate, f"{case}: failed {shlex.join(words)}"


@pytest.mark.parametrize("case", case_names(errors=True))
def test_export_error_case(case: str) -> None:
    text = (CASES / case).read_text()
    expected = [w[1] for w in comment_words(text) if w[0] == "assert-error"]
    assert expected, f"{case} lists no assert-error"
    doc, result = load_case(CASES / case)
    with pytest.raises(HolosError) as info:
        export_project(result.project, case_options(text), doc)
    errors = [str(d) for d in info.value.diagnostics if d.severity == "error"]
    assert sorted(errors) == sorted(expected)


# -- the command line -----------------------------------------------------------------------


def holosc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_holosc(*args, env=env)


def test_cli_stdout_is_the_golden_stream_and_deterministic(tmp_path: Path) -> None:
    first = holosc("export", "kubevirt", "-f", str(EXAMPLES / "three-tier" / "holos.yaml"))
    second = holosc("export", "kubevirt", "-f", str(EXAMPLES / "three-tier" / "holos.yaml"))
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    golden = GOLDEN / "three-tier"
    docs = [(golden / p).read_text() for p in sorted(os.listdir(golden)) if p != LOCK_FILE]
    assert first.stdout == "".join(f"---\n{d}" for d in docs)
    assert len(list(yaml.safe_load_all(first.stdout))) == 13
    # Nothing is written without -o, and no key is generated.
    assert "create secret generic shop-ssh-key --from-file=key=" in first.stderr


def test_cli_output_directory_options_and_stale_files(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(EXAMPLES / "three-tier", project)
    out = tmp_path / "out"
    args = ["export", "kubevirt", "-f", str(project / "holos.yaml"), "-o", str(out)]
    run = holosc(*args, "-n", "prod", "--storage-class", "fast", "--expose", "nodeport")
    assert run.returncode == 0, run.stderr
    assert "14 written, 0 removed" in run.stderr  # 13 manifests and the lock file
    manifests = [yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))]
    assert {m["metadata"].get("namespace", m["metadata"]["name"]) for m in manifests} == {"prod"}
    ports = [
        m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"].endswith("-ports")
    ]
    assert {m["spec"]["type"] for m in ports} == {"NodePort"}
    text = "".join(p.read_text() for p in out.glob("*.yaml"))
    assert text.count("storageClassName: fast") == 3  # one root disk per service
    (out / "notes.txt").write_text("mine")
    # Dropping a service removes its manifests; files holosc never wrote stay.
    compose = (project / "holos.yaml").read_text()
    (project / "holos.yaml").write_text(compose.replace('    ports: ["8080:80"]\n', ""))
    again = holosc(*args, "-n", "prod")
    assert again.returncode == 0, again.stderr
    assert "2 removed" in again.stderr  # the Service and the NetworkPolicy of web's ports
    assert not (out / "2-service-web-ports.yaml").exists()
    assert (out / "notes.txt").read_text() == "mine"


def test_cli_error_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = holosc("export", "kubevirt", "-f", str(EXAMPLES / "gpu" / "holos.yaml"), "-o", str(out))
    assert run.returncode == 3
    assert (
        "holos.yaml:10:19: error: services.trainer.vm.extra_args: extra_args are QEMU options"
        in run.stderr
    )
    assert not out.exists()
    ok = holosc(
        "export", "kubevirt", "-f", str(EXAMPLES / "gpu" / "holos.yaml"), "--ignore-extra-args"
    )
    assert ok.returncode == 0, ok.stderr
    assert "holos.yaml:10:19: warning: services.trainer.vm.extra_args" in ok.stderr
    strict = holosc(
        "export",
        "kubevirt",
        "-f",
        str(EXAMPLES / "gpu" / "holos.yaml"),
        "--ignore-extra-args",
        "--strict",
    )
    assert strict.returncode == 3 and strict.stdout == ""


def test_cli_usage_errors() -> None:
    compose = str(EXAMPLES / "three-tier" / "holos.yaml")
    bad = holosc("export", "kubevirt", "-f", compose, "--container-disk", "web")
    assert bad.returncode == 2 and "expected SERVICE=IMAGE" in bad.stderr
    unknown = holosc("export", "kubevirt", "-f", compose, "--container-disk", "nope=x/y:1")
    assert unknown.returncode == 3
    assert "--container-disk nope=...: no service 'nope'" in unknown.stderr


def test_options_default_to_the_build_like_contract() -> None:
    assert Options().expose == "clusterip" and Options().namespace is None


def test_a_planted_export_lock_deletes_nothing_holosc_did_not_write(tmp_path: Path) -> None:
    """The output directory and its lock are not trusted (a cloned repository): a stale
    entry goes only when its bytes are what the lock says the exporter wrote, never through
    a symlink, and an existing manifest that is a symlink is replaced, not written through."""
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / "README.md").write_text("mine")
    (out / "2-service-gone.yaml").symlink_to(victim)
    (out / "0-namespace-shop.yaml").symlink_to(victim)
    planted = {"README.md": "0" * 64, "2-service-gone.yaml": "0" * 64}
    (out / LOCK_FILE).write_text(json.dumps({"files": planted}))
    args = ["export", "kubevirt", "-f", str(EXAMPLES / "three-tier" / "holos.yaml")]
    run = holosc(*args, "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert (out / "README.md").read_text() == "mine"
    assert (out / "2-service-gone.yaml").is_symlink()
    assert victim.read_text() == "precious"
    assert not (out / "0-namespace-shop.yaml").is_symlink()
    # A file the previous export wrote, with its bytes unchanged, is removed when stale.
    lock = json.loads((out / LOCK_FILE).read_text())
    (out / "2-service-old.yaml").write_text("old\n")
    lock["files"]["2-service-old.yaml"] = hashlib.sha256(b"old\n").hexdigest()
    (out / LOCK_FILE).write_text(json.dumps(lock))
    again = holosc(*args, "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert not (out / "2-service-old.yaml").exists()
    assert (out / "README.md").read_text() == "mine"
