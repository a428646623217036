"""The sidecar image's content tag (``python -m sidecar.build_image --print-tag``): one tag per
build context, base image and architecture, so that a changed sidecar gets a new tag (and is
built or delivered again) and an unchanged one keeps it (and is not)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar import build_image

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the image's sources, which content_tag reads instead of the checkout's."""
    root = tmp_path / "tree"
    for pkg in ("sidecar", "edgeinfer_contract"):
        shutil.copytree(REPO / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(build_image, "HERE", root / "sidecar")
    monkeypatch.setattr(build_image, "REPO", root)
    return root


def tag(**kw: str) -> str:
    args = {"arch": "arm64", "base_image": "python:3.11-slim-bookworm"} | kw
    return build_image.content_tag(**args)


def test_the_tag_is_the_version_and_12_hex_digits_and_the_same_for_the_same_inputs(tree: Path) -> None:
    from sidecar import __version__

    assert re.fullmatch(rf"edgeinfer/sidecar:{re.escape(__version__)}-[0-9a-f]{{12}}", tag())
    assert tag() == tag()
    assert tag(arch="aarch64") == tag(arch="arm64")  # the kernel's name and Docker's are one architecture
    assert build_image.content_tag("arm64", repository="registry.example/edge/sidecar").startswith(
        "registry.example/edge/sidecar:"
    )
    # The Dockerfile's own default base is the base when none is named.
    assert build_image.content_tag("arm64") == tag(base_image=build_image.default_base_image())


@pytest.mark.parametrize(
    "change",
    [
        "sidecar/app.py",
        "edgeinfer_contract/__init__.py",
        "sidecar/Dockerfile",
        "sidecar/requirements.txt",
    ],
)
def test_a_change_to_any_file_the_image_is_built_from_is_a_new_tag(tree: Path, change: str) -> None:
    before = tag()
    with (tree / change).open("a") as fh:
        fh.write("\n# changed\n")
    assert tag() != before


def test_a_new_sidecar_module_is_a_new_tag_and_files_outside_the_image_are_not(tree: Path) -> None:
    before = tag()
    for outside in ("sidecar/build_image.py", "sidecar/compose.yaml"):
        with (tree / outside).open("a") as fh:
            fh.write("\n# not in the image\n")
    (tree / "sidecar" / "notes.txt").write_text("not in the image\n")
    assert tag() == before
    (tree / "sidecar" / "extra.py").write_text("X = 1\n")
    assert tag() != before


def test_the_base_image_by_id_where_known_else_by_reference_and_the_architecture(tree: Path) -> None:
    by_ref = tag(base_image="edgeinfer/base:bookworm")
    assert tag(base_image="debian:bookworm") != by_ref
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    # The id decides where it is known: the same reference naming another image is a new tag,
    # and another reference to the same image is not.
    assert tag(base_image="edgeinfer/base:bookworm", base_id=a) != tag(base_image="edgeinfer/base:bookworm", base_id=b)
    assert tag(base_image="edgeinfer/base:bookworm", base_id=a) == tag(base_image="other/name:x", base_id=a)
    assert tag(arch="amd64") != tag(arch="arm64")


def test_print_tag_prints_what_content_tag_computes_and_builds_nothing() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sidecar.build_image",
            "--print-tag",
            "arm64",
            "--base-image",
            "x/base:1",
            "--base-id",
            "",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == build_image.content_tag("arm64", "x/base:1") + "\n"
