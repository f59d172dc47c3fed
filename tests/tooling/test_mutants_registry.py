"""The mutant registry (tests/mutants.toml) stays usable between `make mutants` runs.

`make mutants` runs on demand, not in CI, so nothing else notices when a merge drops a
`[[mutant]]` header or a refactor moves the code a mutant breaks: the registry would then
silently guard less than it lists.
"""

from __future__ import annotations

from tests.support.mutants import ROOT, load


def test_every_mutant_has_a_unique_name_a_live_target_and_existing_tests() -> None:
    mutants = load()
    names = [m.name for m in mutants]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    for m in mutants:
        source = (ROOT / m.file).read_text()
        assert source.count(m.find) == 1, f"{m.name}: its find text occurs {source.count(m.find)} times in {m.file}"
        assert m.find != m.replace, m.name
        assert m.tests and all((ROOT / t).is_file() for t in m.tests), f"{m.name}: {m.tests}"
