"""changelogs/ is antsibull-changelog's: the fragments lint clean, CHANGELOG.md is what
`antsibull-changelog generate` makes of changelogs/changelog.yaml, and a release made from
the fragments as they are now takes every one of them (in a copy: the repository keeps them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def changelog(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # release asks ansible-doc (on PATH) which plugins the collection has.
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": os.environ["HOME"], "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(BIN / "antsibull-changelog"), *args], cwd=cwd, capture_output=True, text=True, env=env, check=False
    )


def test_the_fragments_lint_clean_and_changelog_md_is_generated_from_changelog_yaml(tmp_path: Path) -> None:
    lint = changelog(REPO, "lint")
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr
    copy = tmp_path / "ansible_collections" / "edgeinfer" / "deploy"
    shutil.copytree(REPO / "changelogs", copy / "changelogs")
    shutil.copy(REPO / "galaxy.yml", copy)
    gen = changelog(copy, "generate")
    assert gen.returncode == 0, gen.stdout + gen.stderr
    assert (copy / "CHANGELOG.md").read_text() == (REPO / "CHANGELOG.md").read_text(), "run: make changelog"


def test_a_release_takes_every_fragment(tmp_path: Path) -> None:
    copy = tmp_path / "ansible_collections" / "edgeinfer" / "deploy"
    for top in ("changelogs", "plugins", "meta"):
        shutil.copytree(REPO / top, copy / top, symlinks=False)
    shutil.copy(REPO / "galaxy.yml", copy)
    fragments = sorted(p.name for p in (REPO / "changelogs" / "fragments").glob("*.yml"))
    released = set(yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())["releases"])
    pending = sorted(set(fragments) - {f for r in released for f in _fragments_of(r)})
    assert pending, "no fragment waits for a release"

    proc = changelog(copy, "release", "--version", "9.9.9", "--date", "2026-12-31")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    release = yaml.safe_load((copy / "changelogs" / "changelog.yaml").read_text())["releases"]["9.9.9"]
    assert sorted(release["fragments"]) == pending
    for name in pending:
        for section, entries in yaml.safe_load((REPO / "changelogs" / "fragments" / name).read_text()).items():
            for entry in entries:
                assert entry in release["changes"][section], (name, section, entry)
    assert "## v9\\.9\\.9" in (copy / "CHANGELOG.md").read_text()


def _fragments_of(version: str) -> list[str]:
    data = yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())
    return data["releases"][version].get("fragments", [])
