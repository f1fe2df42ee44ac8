"""Every example compiles to its golden/ directory byte for byte.

Regenerate after an intended change with `HOLOSC_UPDATE_GOLDEN=1 pytest tests/test_golden.py`
and review `git diff golden/`.
"""

from __future__ import annotations

import difflib
import os
import shutil

import pytest

from tests.conftest import GOLDEN, compile_example, example_names

UPDATE = os.environ.get("HOLOSC_UPDATE_GOLDEN") == "1"
HOW = "regenerate with: HOLOSC_UPDATE_GOLDEN=1 pytest tests/test_golden.py"


@pytest.mark.parametrize("name", example_names())
def test_example_matches_golden(name: str) -> None:
    output = compile_example(name)
    expected_dir = GOLDEN / name
    if UPDATE:
        shutil.rmtree(expected_dir, ignore_errors=True)
        for path, file in output.files.items():
            target = expected_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.data)
            target.chmod(file.mode)
    actual = {str(p) for p in output.files}
    expected = {str(p.relative_to(expected_dir)) for p in expected_dir.rglob("*") if p.is_file()}
    assert not actual - expected, f"missing from golden/{name}: {sorted(actual - expected)}; {HOW}"
    assert not expected - actual, f"unexpected in golden/{name}: {sorted(expected - actual)}; {HOW}"
    for path, file in output.files.items():
        want = (expected_dir / path).read_bytes()
        if want == file.data:
            assert (expected_dir / path).stat().st_mode & 0o111 == file.mode & 0o111, path
            continue
        try:
            delta = "".join(
                difflib.unified_diff(
                    want.decode().splitlines(True),
                    file.data.decode().splitlines(True),
                    f"golden/{name}/{path}",
                    f"compiled/{path}",
                )
            )
        except UnicodeDecodeError:
            delta = f"binary {path}: golden {len(want)} bytes, compiled {len(file.data)} bytes"
        pytest.fail(f"{path} differs from golden/{name}:\n{delta}\n{HOW}")
