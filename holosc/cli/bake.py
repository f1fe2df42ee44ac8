"""`holosc bake`: build the images of `dockerfile:` services ahead of time."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from holosc.cli import common, images, live, options
from holosc.core import layout
from holosc.tools import bake as baker
from holosc.tools import pull


def bake(
    services: Annotated[
        list[str] | None,
        typer.Argument(help="Services to build (default: every service with a dockerfile)."),
    ] = None,
    *,
    file: common.FileOption = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Run every step afresh in new layers (cached layers are kept for what uses "
            "them; prune removes them).",
        ),
    ] = False,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Build the images of services with a dockerfile: each RUN and COPY a cached layer,
    the builder VM booted only for what the cache lacks."""
    manager = options.manager(user, system)
    loaded = common.load(file)
    common.print_diagnostics(loaded.warnings)
    chosen = baker.buildable(loaded.project, services or [])
    cache = layout.images(manager.state_dir)
    pull.ensure_images(loaded.project, cache, images.ProgressReport(sys.stderr))
    with live.live(common.note) as shown:
        built = baker.bake(
            loaded.project,
            common.compile_loaded(loaded),
            loaded.file.parent.resolve(),
            cache,
            shown.say,
            services=chosen,
            no_cache=no_cache,
            status=live.status(shown),
        )
    for service, key in built.items():
        print(f"{service}: {key[:12]}")
