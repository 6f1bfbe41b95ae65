"""The docs stand alone: no reference points outside the repository, and every
``pcs.md §N`` / ``constraints.md §N`` / ``keccak_air.md §N`` names a section that exists in
``docs/protocol/``."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "docs" / "protocol"
DOCS = ("pcs", "constraints", "keccak_air")
# Built from pieces so that this file does not match itself.
OUTSIDE = ["PCS" + ".md", "CONSTRAINTS" + ".md", "KECCAK_AIR" + ".md", "../" + "shared",
           "shared" + "/spec", "DESIGN" + ".md"]


def _sources():
    files = [ROOT / "README.md"]
    for folder in ("mlx_stark", "tests", "docs", "scripts", "benchmarks"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md")]
    return [p for p in files if p.is_file()]


def _sections(name: str) -> set:
    text = (PROTOCOL / f"{name}.md").read_text()
    return {m.group(1) for m in re.finditer(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", text, re.M)}


def test_protocol_documents_exist():
    for name in DOCS:
        assert len(_sections(name)) >= 9, name


@pytest.mark.parametrize("needle", OUTSIDE)
def test_no_reference_outside_the_repository(needle):
    hits = [f"{p.relative_to(ROOT)}:{i + 1}" for p in _sources()
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines()) if needle in line]
    assert not hits, hits


def test_section_references_exist():
    sections = {name: _sections(name) for name in DOCS}
    pattern = re.compile(r"\b(pcs|constraints|keccak_air)\.md §(\d+(?:\.\d+)*)")
    missing = []
    for p in _sources():
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines()):
            for m in pattern.finditer(line):
                if m.group(2) not in sections[m.group(1)]:
                    missing.append(f"{p.relative_to(ROOT)}:{i + 1}: {m.group(0)}")
    assert not missing, missing


def test_air_help_leads_to_the_builder():
    import pydoc

    from mlx_stark.air import Air
    from mlx_stark.air.builder import LookupBus, PermutationCheckBus, SymbolicBuilder

    text = pydoc.render_doc(Air, renderer=pydoc.plaintext)
    for name in ("b.local", "b.next", "b.public_values", "when_first_row", "when_transition",
                 "when_last_row", "assert_eq", "assert_zero", "push_interaction",
                 "SymbolicBuilder"):
        assert name in text, name
    for cls in (SymbolicBuilder, PermutationCheckBus, LookupBus):
        for name in dir(cls):
            member = getattr(cls, name)
            if not name.startswith("_") and callable(member):
                assert member.__doc__, f"{cls.__name__}.{name} has no docstring"
