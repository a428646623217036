"""The ansible-core range meta/runtime.yml declares is the one `make test-cores` runs: from the
dev set's minor release (constraints.txt) to the newest of constraints-cores.txt, each minor in
between tested, the ceiling the next minor after the newest tested."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[3]


def releases_under_test() -> list[Version]:
    dev = re.search(r"^ansible-core==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert dev, "constraints.txt pins no ansible-core"
    cores = re.findall(r"^ansible-core==(\d+\.\d+\.\d+)$", (REPO / "constraints-cores.txt").read_text(), re.M)
    assert cores, "constraints-cores.txt names no ansible-core release"
    return sorted(Version(v) for v in [dev.group(1), *cores])


def test_the_declared_range_is_the_tested_one() -> None:
    declared = SpecifierSet(yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"])
    tested = releases_under_test()
    assert all(v in declared for v in tested), (str(declared), [str(v) for v in tested])
    minors = sorted({(v.major, v.minor) for v in tested})
    low, high = minors[0], minors[-1]
    assert minors == [(low[0], m) for m in range(low[1], high[1] + 1)], f"a minor release between is untested: {minors}"
    assert Version(f"{low[0]}.{low[1]}.0") in declared
    assert Version(f"{low[0]}.{low[1] - 1}.99") not in declared, f"{declared} admits a release below {low}"
    assert Version(f"{high[0]}.{high[1] + 1}.0") not in declared, (
        f"{declared} admits the untested {high[0]}.{high[1] + 1}"
    )


def test_each_minor_release_is_tested_once_at_its_newest_pinned_patch() -> None:
    minors = [(v.major, v.minor) for v in releases_under_test()]
    assert len(minors) == len(set(minors)), minors
