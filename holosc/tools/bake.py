"""`holosc bake` and the builds of `holosc up`: run a compiled project's Dockerfile builds.

The build is holos-bake's own code (holos_runtime.bake), the same the build units run, so
`holosc bake` ahead of time, `holosc up` and a bare `systemctl start` of the target fill
one cache with the same layers. Here the output streams to the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from holosc.core import layout
from holosc.core.compiler import Output
from holosc.core.model import Project
from holosc.errors import BuildFailedError, Diagnostic, RuntimeCommandError


def buildable(project: Project, services: Sequence[str] = ()) -> list[str]:
    """The `dockerfile:` services to build: all, or those named (each must be one)."""
    built = [s.name for s in project.services if s.build is not None]
    unknown = [s for s in services if s not in built]
    if unknown:
        known = ", ".join(built) or "none"
        message = f"not a service with a dockerfile: {', '.join(unknown)} (these have one: {known})"
        raise RuntimeCommandError(message, [Diagnostic(message, file="holosc")])
    return [s for s in built if not services or s in services]


def bake(
    project: Project,
    output: Output,
    project_dir: Path,
    cache_dir: Path,
    say: Callable[[str], None],
    *,
    services: Sequence[str] = (),
    no_cache: bool = False,
    status: Callable[[str, str, str], None] | None = None,
) -> dict[str, str]:
    """Build each service's image (what the cache lacks); {service: layer key}.

    :raises BuildFailedError: when a step fails (its output was streamed already).
    :raises RuntimeCommandError: when the builder cannot run (QEMU exits at start, the
        base image is refused, the cache cannot be written).
    """
    from holos_runtime import bake as builder  # QEMU and SSH code: only when building
    from holos_runtime.imagecache import Cache

    built = {}
    for service in buildable(project, services):
        data = output.files[PurePosixPath(layout.build_spec(project.name, service))].data
        try:
            built[service] = builder.bake(
                json.loads(data),
                Cache(cache_dir),
                project_dir,
                say,
                no_cache=no_cache,
                status=status,
            )
        except builder.StepFailure as exc:
            message = f"build of {service} failed: {exc}"
            raise BuildFailedError(message, [Diagnostic(message, file="holosc")]) from None
        except (builder.Failure, OSError) as exc:
            message = f"build of {service} failed: {exc}"
            raise RuntimeCommandError(message, [Diagnostic(message, file="holosc")]) from None
    return built
