"""A `dockerfile:` service's build as the file holos-bake reads (`<p>/<service>.build.json`).

It names the build, not its result: the base image by reference or by its path in the
project, the builder VM's size, and each step's script and input. The layer keys are
computed by holos-bake on the host, from the base's digest there; so the file is the
same on every host and reviewable in a diff (COPY content is base64).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from holosc.core import layout
from holosc.core.model import Build, Project, Service

FORMAT = 1  # holos_runtime.bake.SPEC_FORMAT


def spec(project: Project, service: Service) -> str:
    build = service.build
    assert build is not None, service.name
    image, vm = service.image, service.vm
    base: dict[str, Any] = {"format": image.format}
    if image.path is not None:
        base["file"] = image.path
    else:
        base["ref"] = image.ref
    doc = {
        "format": FORMAT,
        "project": project.name,
        "service": service.name,
        "dockerfile": build.dockerfile,
        "base": base,
        "disk_size": vm.disk_size,
        "vm": {
            "vcpu": vm.vcpu,
            "memory_mb": vm.memory_mb,
            "machine": vm.machine,
            "cpu": vm.cpu_model,
            "kernel": vm.kernel,
            "initrd": vm.initrd,
            "cmdline": vm.cmdline,
            "ovmf_pairs": [list(p) for p in layout.OVMF_PAIRS] if vm.uefi else None,
        },
        "steps": [
            _step(step.line, step.instruction, step.script, step.input) for step in build.steps
        ],
        "seal": {"exports": build.exports.splitlines(), "environment": list(build.environment)},
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _step(line: int, instruction: str, script: str, data: bytes) -> dict[str, Any]:
    # Scripts as lists of lines: a reviewed diff shows the line that changed.
    step: dict[str, Any] = {"line": line, "instruction": instruction, "script": script.splitlines()}
    if data:
        step["input"] = base64.b64encode(data).decode("ascii")
    return step


def builds(project: Project) -> list[tuple[Service, Build]]:
    return [(s, s.build) for s in project.services if s.build is not None]
