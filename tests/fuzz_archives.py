"""Hostile inputs for the reader: hypothesis strategies that damage the corpus's base archive (tests/corpus.py).

Used by tests/test_conformance.py (a bounded number of examples) and benchmarks/fuzz_reader.py (a long
run). The property: the reader either yields exactly the base's members or refuses with an ArchiveError;
never another exception, never a hang, never a pyarrow allocation above MEMORY_CEILING.
"""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import strategies as st

from corpus import Base, rebuild, recompress
from samples import end_archive, layout, member_spans, read_back

MEMORY_CEILING = 256 << 20  # peak bytes pyarrow's pool may hold while one hostile archive is read


# -- Strategies: each draws a function base -> archive bytes ----------------------------------

def _flip(data: bytes, pos: int, value: int) -> bytes:
    pos %= len(data)
    return data[:pos] + bytes([value]) + data[pos + 1 :]


def _byte_edits(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    for pos, value in edits:
        data = _flip(data, pos, value)
    return data


edits = st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), min_size=1, max_size=4)


@st.composite
def outer_byte_edits(draw):
    """Bytes of the archive overwritten anywhere: tar headers, pax records, data, padding, the end."""
    changes = draw(edits)
    return lambda base: _byte_edits(base.data, changes)


@st.composite
def pax_record_edits(draw):
    """Bytes overwritten inside the pax records (the member comment), where damage is the subtlest."""
    which, changes = draw(st.integers(0, 1 << 16)), draw(edits)

    def apply(base: Base) -> bytes:
        regions = [r for r in layout(base.data) if r.kind == "pax-records"]
        region = regions[which % len(regions)]
        span = base.data[region.start : region.end]
        return base.data[: region.start] + _byte_edits(span, changes) + base.data[region.end :]

    return apply


@st.composite
def truncations(draw):
    cut = draw(st.integers(0, 1 << 30))
    return lambda base: base.data[: cut % len(base.data)]


@st.composite
def insertions(draw):
    pos, blob = draw(st.integers(0, 1 << 30)), draw(st.binary(min_size=1, max_size=600))
    return lambda base: base.data[: pos % len(base.data)] + blob + base.data[pos % len(base.data) :]


@st.composite
def member_reorders(draw):
    """Whole members swapped, dropped or repeated, with their own (consistent) headers."""
    picks = draw(st.lists(st.integers(0, 1 << 16), min_size=1, max_size=12))

    def apply(base: Base) -> bytes:
        spans = member_spans(base.data)
        chosen = [spans[p % len(spans)] for p in picks]
        body = b"".join(base.data[s:e] for _, s, e in chosen)
        return end_archive(body)

    return apply


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
HEADER_KEYS = ["format", "reader_version", "writer_version", "required_features", "optional_features", "writer", "source"]
TRAILER_KEYS = ["members", "counts"]


@st.composite
def json_field_edits(draw):
    """A header or trailer field replaced, removed or duplicated, hashes and sizes kept consistent."""
    trailer = draw(st.booleans())
    key = draw(st.sampled_from(TRAILER_KEYS if trailer else HEADER_KEYS))
    action = draw(st.sampled_from(["replace", "remove", "duplicate"]))
    value = draw(json_values)

    def mutate(raw: bytes) -> bytes:
        obj = json.loads(raw)
        if action == "remove":
            obj.pop(key, None)
        elif action == "replace":
            obj[key] = value
        else:  # a second copy of the key, as a hand-written JSON text could hold
            return raw[:-1] + f",{json.dumps(key)}:{json.dumps(value)}}}".encode()
        return json.dumps(obj).encode()

    def apply(base: Base) -> bytes:
        index = len(base.members) - 1 if trailer else 0
        payloads = list(base.payloads)
        payloads[index] = recompress(payloads[index], mutate)
        return rebuild(base, payloads)

    return apply


@st.composite
def member_content_edits(draw):
    """Bytes inside one member (Parquet, Arrow, or the decompressed artifact tar) damaged or cut, with the
    member's sha256 (and raw_size) recomputed: only the decoders can notice."""
    which, changes, cut = draw(st.integers(0, 1 << 16)), draw(edits), draw(st.none() | st.integers(0, 1 << 20))

    def mutate(data: bytes) -> bytes:
        data = _byte_edits(data, changes) if data else data
        return data[: cut % (len(data) + 1)] if cut is not None else data

    def apply(base: Base) -> bytes:
        index = 1 + which % (len(base.members) - 2)
        payloads = list(base.payloads)
        payload = payloads[index]
        payloads[index] = recompress(payload, mutate) if base.members[index].raw_size is not None else mutate(payload)
        return rebuild(base, payloads)

    return apply


hostile = st.one_of(
    outer_byte_edits(), pax_record_edits(), truncations(), insertions(), member_reorders(), json_field_edits(),
    member_content_edits(),
)


def check(base: Base, data: bytes) -> str | None:
    """Read ``data`` as verify does; a problem with the reader's answer, or None. Exceptions other than
    ArchiveError propagate (read_back catches only ArchiveError)."""
    pool = pa.default_memory_pool()
    before = pool.max_memory()
    result = read_back(data)
    if pool.max_memory() > max(before, MEMORY_CEILING):
        return f"pyarrow's pool peaked at {pool.max_memory()} bytes"
    if result.error is not None:
        if not result.bytes_ok:
            return "a member whose bytes fail their sha256 was handed out"
        if "\n" in str(result.error):
            return f"the error is more than one line: {result.error!r}"
        return None
    if data != base.data and [m.name for m in result.yielded] != [m.name for m in base.members[1:-1]]:
        return f"accepted with other members: {[m.name for m in result.yielded]}"
    return None
