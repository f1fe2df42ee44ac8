"""Seeds copied into a cached layout are the bytes pycdlib builds for the same files."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holosc.render import seed

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=3000)
# Small alphabets make equal sizes (cache hits) with different contents common.
SMALL = st.text("ab\n", min_size=0, max_size=40)


def reference(files: dict[str, str]) -> bytes:
    return seed.pycdlib_seed({k: v.encode() for k, v in files.items()})[0]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.tuples(TEXT | SMALL, TEXT | SMALL, TEXT | SMALL))
def test_same_bytes_as_pycdlib(texts: tuple[str, str, str]) -> None:
    files = dict(zip(("user-data", "meta-data", "network-config"), texts, strict=True))
    assert seed.build_seed(files) == reference(files)


def test_replicas_share_a_layout_yet_keep_their_contents() -> None:
    seed._layout.cache_clear()
    first = {"user-data": "a" * 100, "meta-data": "id: 1", "network-config": "x: y"}
    second = {"user-data": "b" * 100, "meta-data": "id: 2", "network-config": "x: z"}
    one, two = seed.build_seed(first), seed.build_seed(second)
    assert seed._layout.cache_info().hits == 1
    assert one == reference(first) and two == reference(second) and one != two
