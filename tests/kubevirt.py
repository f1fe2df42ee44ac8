"""Helpers of the KubeVirt export tests: the options each example and fixture exports
with, and validation of a manifest against the schema of its kind.

KubeVirt and CDI kinds are checked with jsonschema against the CRD schemas in
tests/data/kubevirt; core kinds with the kubernetes-validate package (its bundled
schemas, strict: unknown fields are errors). No cluster runs here.
"""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

from holosc.core.document import Document
from holosc.core.validate.checks import Result, build_project
from holosc.export.kubevirt import Export, Options, export_project
from holosc.load.files import HostFiles
from holosc.load.parse import load_text
from tests.conftest import REPO, build_example

SCHEMAS = REPO / "tests" / "data" / "kubevirt"
CASES = REPO / "tests" / "export-cases"
GOLDEN = REPO / "golden-export"
CRDS = {
    ("kubevirt.io/v1", "VirtualMachine"): "kubevirt.io_virtualmachine_v1.json",
    ("pool.kubevirt.io/v1alpha1", "VirtualMachinePool"): (
        "pool.kubevirt.io_virtualmachinepool_v1alpha1.json"
    ),
    ("cdi.kubevirt.io/v1beta1", "DataVolume"): "cdi.kubevirt.io_datavolume_v1beta1.json",
}
CORE = {
    ("v1", "Namespace"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
}
KUBERNETES = "1.30"  # the oldest Kubernetes the current KubeVirt releases support
# Options an example needs to export at all (gpu passes QEMU extra_args).
EXAMPLE_OPTIONS = {"gpu": Options(ignore_extra_args=True)}


@functools.cache
def _validator(file: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / file).read_text())
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)  # type: ignore[no-any-return]


def schema_errors(body: dict[str, Any]) -> list[str]:
    """Every schema error of one manifest (empty when it validates)."""
    key = (body["apiVersion"], body["kind"])
    if key in CRDS:
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _validator(CRDS[key]).iter_errors(body)
        ]
    assert key in CORE, f"no schema for {key}"
    try:
        kubernetes_validate.validate(body, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'/'.join(map(str, exc.absolute_path))}: {exc.message}"]
    return []


def export_example(name: str) -> tuple[Result, Export]:
    result = build_example(name)
    return result, export_project(result.project, EXAMPLE_OPTIONS.get(name, Options()))


def case_options(text: str) -> Options:
    """`# option KEY[=VALUE]` lines of a fixture."""
    values: dict[str, Any] = {}
    disks: dict[str, str] = {}
    for words in comment_words(text):
        if words[0] != "option":
            continue
        key, _, value = words[1].partition("=")
        if key == "container_disk":
            service, _, image = value.partition("=")
            disks[service] = image
        elif key == "ignore_extra_args":
            values[key] = True
        else:
            values[key] = value
    return Options(container_disks=disks, **values)


def comment_words(text: str) -> list[list[str]]:
    out = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        first = line[1:].split(maxsplit=1)[:1]
        if first and (first[0] == "option" or first[0].lstrip("!").startswith("assert-")):
            out.append(shlex.split(line[1:]))
    return out


def load_case(path: Path) -> tuple[Document, Result]:
    doc = load_text(path.read_text(), directory=CASES, environ={})
    return doc, build_project(doc, HostFiles())


def case_names(errors: bool) -> list[str]:
    return sorted(p.name for p in CASES.glob("*.yaml") if p.name.endswith(".error.yaml") == errors)
