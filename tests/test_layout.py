"""The shape of the package: the compiler core is pure and nothing imports in a circle.

Read from the source with ast (no import runs), so a lazy import inside a function counts
as much as one at the top.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from holosc.core import layout
from tests.conftest import REPO

# Standard modules that reach the disk, the clock, the environment, processes or the net.
IO_MODULES = {
    "os", "shutil", "subprocess", "socket", "tempfile", "time", "datetime", "urllib",
    "http", "signal", "fcntl", "select", "glob", "io", "pty", "termios", "unittest",
}  # fmt: skip


def _modules() -> dict[str, set[str]]:
    """holosc's modules and what each imports (holosc modules by full dotted name)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((REPO / "holosc").rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        imports: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imports.add(node.module)
                imports.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                imports.update(alias.name for alias in node.names)
        graph[name] = imports
    return graph


def test_the_core_does_no_io_and_imports_only_the_core() -> None:
    graph = _modules()
    core = [m for m in graph if m.startswith("holosc.core")]
    assert len(core) > 15
    for module in core:
        for imported in graph[module]:
            if imported.startswith("holosc."):
                if imported in graph:
                    assert imported.startswith(("holosc.core", "holosc.errors")), (
                        f"{module} imports {imported}: the core imports no load/emit/host code"
                    )
            else:
                top = imported.split(".")[0]
                assert top not in IO_MODULES, f"{module} imports {imported}"


def test_no_import_cycle() -> None:
    graph = _modules()
    edges = {m: {i for i in deps if i in graph and i != m} for m, deps in graph.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for child in sorted(edges[module]):
            if child.startswith(module + "."):
                continue  # a package's __init__ naming its own submodule is no cycle
            assert state.get(child) != 1, " -> ".join([*path, module, child])
            if child not in state:
                visit(child, [*path, module])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])


def test_the_rooms_are_the_pipeline() -> None:
    """`ls holosc` names the pipeline: load → core (validate, plan, render) → emit, and
    the host and tools rooms beside it."""
    rooms = {p.name for p in (REPO / "holosc").iterdir() if (p / "__init__.py").is_file()}
    assert {"load", "core", "emit", "host", "tools", "cli", "export"} <= rooms
    assert {"validate", "render"} <= {p.name for p in (REPO / "holosc" / "core").iterdir()}
    flat = sorted(p.name for p in Path(REPO / "holosc").glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "errors.py"], flat


def test_one_owner_for_every_derived_name_and_path() -> None:
    """Unit-name patterns and state paths are spelled only in holosc/core/layout.py."""
    spelled = re.compile(
        r'f"holos-\{|-healthy\.service"|"%[SEt]/|"holos/|\}\.lock"'
        r'|/ "(instances|volumes|ssh|images|known_hosts|console\.log|root\.qcow2|qmp\.sock)"'
    )
    owner = REPO / "holosc" / "core" / "layout.py"
    for path in sorted((REPO / "holosc").rglob("*.py")):
        if path != owner:
            for number, line in enumerate(path.read_text().splitlines(), 1):
                assert not spelled.search(line), f"{path.relative_to(REPO)}:{number}: {line}"


def test_both_forms_come_from_one_function() -> None:
    assert str(layout.key(layout.STATE, "shop")) == "%S/holos/ssh/shop/id_ed25519"
    assert layout.key(Path("/var/lib/holos"), "shop") == Path("/var/lib/holos/ssh/shop/id_ed25519")
    unit = layout.instance_unit("shop", "web", 1)
    assert layout.unit_label("shop", unit) == "web-1" == layout.instance_name("web", 1)
    assert layout.gate_service("shop", layout.gate_unit("shop", "db")) == "db"
    assert layout.template_service("shop", layout.template_name("shop", "db")) == "db"
    template = layout.template_name("shop", "web")
    assert layout.is_unit_of(template, "shop") and not layout.is_unit_of(template, "sho")


def test_one_subprocess_runner() -> None:
    """Only holosc/host/run.py runs programs and waits (exec via os.execvp aside), through
    holos_runtime.bounded (output kept bounded), which the helpers share."""
    call = re.compile(r"subprocess\.(run|Popen|call|check_call|check_output)\(|bounded\.run\(")
    users = sorted(
        str(path.relative_to(REPO))
        for path in (REPO / "holosc").rglob("*.py")
        if call.search(path.read_text())
    )
    assert users == ["holosc/host/run.py"], users
