"""The normative spec in formats/ must describe the code as it is.

A change of a schema, a section, a table or a format constant that forgets
formats/ fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlflow_archive import archive, container, members, schemas

FORMATS = Path(__file__).resolve().parent.parent / "formats"


def _format_md() -> str:
    return (FORMATS / "FORMAT.md").read_text(encoding="utf-8")


def test_schemas_md_is_generated_from_the_code():
    # Regenerate with: python -m mlflow_archive.schemas > formats/SCHEMAS.md
    assert (FORMATS / "SCHEMAS.md").read_bytes() == schemas.markdown().encode("utf-8")


def test_sections_table_matches_the_code():
    # Rows of FORMAT.md §5.1: | order | `section` | `table`, `table`, ... | owner |
    rows = re.findall(r"^\| (\d+) \| `([a-z_]+)` \| ([^|]*) \|", _format_md(), re.MULTILINE)
    documented = {section: tuple(re.findall(r"`([a-z_]+)`", tables)) for _, section, tables in rows}
    assert [int(order) for order, _, _ in rows] == list(range(1, len(rows) + 1))
    assert list(documented.items()) == list(archive.SECTIONS.items())
    assert set(schemas.TABLES) == {t for tables in archive.SECTIONS.values() for t in tables}


def test_limits_table_matches_the_code():
    # Each constant has a row in FORMAT.md §11 that names it and gives its exact value.
    constants = {
        "BLOCK": container.BLOCK,
        "RECORD": container.RECORD,
        "MAX_NAME_BYTES": container.MAX_NAME_BYTES,
        "MAX_PAX_HEADER": container.MAX_PAX_HEADER,
        "MAX_NAME_COMPONENT": members.MAX_NAME_COMPONENT,
        "USTAR_SIZE_LIMIT": container.USTAR_SIZE_LIMIT,
        "MAX_JSON_RAW": members.MAX_JSON_RAW,
        "MAX_JSON_DEPTH": members.MAX_JSON_DEPTH,
        "MAX_TABLE_MEMBER": members.MAX_TABLE_MEMBER,
        "MAX_TABLE_RAW": members.MAX_TABLE_RAW,
        "MAX_TABLE_ROWS": members.MAX_TABLE_ROWS,
        "TABLE_PART_TARGET": members.TABLE_PART_TARGET,
        "ROW_GROUP_ROWS": members.ROW_GROUP_ROWS,
        "ARTIFACT_PART_TARGET": archive.ARTIFACT_PART_TARGET,
    }
    assert container.RECORD == 10240
    lines = _format_md().splitlines()
    for name, value in constants.items():
        row = [line for line in lines if line.startswith("|") and line.rstrip().endswith(f"| `{name}` |")]
        assert len(row) == 1, f"FORMAT.md has no single limits row for {name}"
        assert f"| {value} |" in row[0], f"FORMAT.md gives {name} another value than {value}"


def test_names_and_versions_are_in_the_spec():
    text = _format_md()
    for literal in (
        container.COMMENT_MAGIC,
        archive.FORMAT_NAME,
        archive.HEADER_NAME,
        archive.TRAILER_NAME,
        members.JSON_EXT,
        members.PARQUET_EXT,
        members.ARROWS_EXT,
        members.ARTIFACTS_EXT,
        container.NAME_PATTERN.pattern,
        "././@PaxHeader",
        "pip install -U mlflow-archive",
    ):
        assert literal in text, f"FORMAT.md does not mention {literal!r}"
    assert archive.READER_VERSION == archive.WRITER_VERSION == 5
    assert archive.WRITTEN_READER_VERSION == 1
    assert f"# The mlflow-archive format, version {archive.WRITER_VERSION}\n" in text
    assert f"**Current format version: {archive.WRITER_VERSION}**" in (FORMATS / "README.md").read_text(encoding="utf-8")


def test_every_list_of_kinds_names_the_sections_in_archive_order():
    """The kinds are still listed in several places (issue "One home per object kind"): they must agree."""
    from mlflow_archive.endpoints import KIND_PROBES, KIND_SINCE
    from mlflow_archive.objects import OBJECT_MODULES
    from mlflow_archive.restoring import RESTORERS

    sections = list(archive.SECTIONS)
    assert [module.SECTION for module in OBJECT_MODULES] == sections
    assert [module.SECTION for module in RESTORERS] == sections
    assert set(KIND_SINCE) <= set(sections) and set(KIND_PROBES) <= set(KIND_SINCE)
