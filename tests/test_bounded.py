"""Output another party controls is kept bounded (issue 22, class 8): ssh relays what a
guest writes to holosc (peer update) and to holos-health (healthchecks), virsh a domain's
XML. holos_runtime.bounded keeps the start of stdout and the end of stderr."""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from holos_runtime import bounded

from holosc.host import run
from tests.conftest import EXAMPLES, run_holosc

FLOOD = "yes 0123456789abcdef | head -c 300000000; echo last line >&2"


def test_a_flood_is_cut_to_the_limit_and_the_program_never_blocks() -> None:
    both = f"({FLOOD}) & yes err | head -c 50000000 >&2; wait"
    done = bounded.run(["sh", "-c", both], limit=1 << 20, timeout=120)
    assert done.returncode == 0
    assert len(done.stdout) == 1 << 20 and done.stdout.startswith(b"0123456789abcdef\n")
    assert len(done.stderr) <= 1 << 20


def test_the_end_of_stderr_is_what_stays() -> None:
    done = bounded.run(["sh", "-c", f"{{ {FLOOD}; }} >&2; exit 3"], limit=4096)
    assert done.returncode == 3 and done.stdout == b""
    assert done.stderr.endswith(b"abcdlast line\n") and len(done.stderr) == 4096


def test_memory_does_not_grow_with_the_output() -> None:
    """300 MB of output under a 256 MiB address-space limit: subprocess.run's
    capture_output (what holosc and holos-health used) fails there."""
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (256 << 20, 256 << 20))\n"
        "from holosc.host import run\n"
        f"r = run.run(['sh', '-c', '{{ ' + {FLOOD!r} + '; }} >&2; exit 1'], check=False)\n"
        "assert r.stderr.endswith('last line\\n'), r.stderr[-100:]\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert resource.getrlimit(resource.RLIMIT_AS)  # the parent is unlimited


def test_input_reaches_the_program_and_timeouts_kill_it() -> None:
    data = b"x" * (1 << 20)
    assert bounded.run(["wc", "-c"], input=data).stdout.strip() == b"1048576"
    with pytest.raises(subprocess.TimeoutExpired):
        bounded.run(["sleep", "30"], timeout=0.5)
    assert run.run(["sh", "-c", "printf 'a\\r\\nb\\rc'"]).stdout == "a\nb\nc"


def test_planted_huge_files_in_the_output_directory_are_not_read_whole(tmp_path: Path) -> None:
    """An 8 GiB (sparse) holos.lock.json and unit file in a cloned output directory:
    build, --diff and --check read at most what holosc could have written there."""
    project = tmp_path / "p"
    shutil.copytree(EXAMPLES / "three-tier", project)
    out = project / "deploy"
    assert run_holosc("build", cwd=project).returncode == 0
    for name in ("holos.lock.json", "holos-shop-db@.service"):
        with (out / name).open("r+b") as f:
            f.truncate(8 << 30)

    def limited(*args: str) -> subprocess.CompletedProcess[str]:
        script = (
            "import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from holosc.cli import main\n"
            f"sys.argv = ['holosc', *{list(args)!r}]\n"
            "main()\n"
        )
        return subprocess.run(
            [sys.executable, "-c", script], cwd=project, capture_output=True, text=True
        )

    diff = limited("build", "--diff")
    assert diff.returncode == 1, diff.stderr
    assert "a/holos-shop-db@.service is larger than holosc writes; not shown" in diff.stdout
    built = limited("build")
    assert built.returncode == 0, built.stderr
    assert (out / "holos-shop-db@.service").stat().st_size < 4096


def test_a_planted_huge_export_lock_is_not_read_whole(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(EXAMPLES / "three-tier", project)
    out = tmp_path / "k8s"
    out.mkdir()
    with (out / "holos-export.lock").open("wb") as f:
        f.truncate(8 << 30)
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from holosc.cli import main\n"
        f"sys.argv = ['holosc', 'export', 'kubevirt', '-o', {str(out)!r}]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert (out / "holos-export.lock").stat().st_size < 1 << 20
