"""Release identity and the safety of the names a release holds: its id, file digests, member
names and the refusal of symbolic links."""

from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path, PurePosixPath
from typing import Any

from .layout import ContractError

# The characters a release directory's name is made of (the version part of ``<version>-<sha8>``).
RELEASE_NAME_RULE = "ASCII letters, digits and '._-', not starting with '.'"
# A directory name is at most 255 bytes on the filesystems in use; ``-<sha8>`` takes 9 of them.
MAX_VERSION_LENGTH = 246


def _release_name(model_version: str) -> str:
    """The version with any character outside RELEASE_NAME_RULE's replaced by ``_``."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "_" for c in str(model_version))


def release_id(model_version: str, digest: str) -> str:
    """The id of a release: ``<version>-<sha8>``, the name of its directory on every edge.

    The version with any character other than ASCII letters, digits and ``._-`` replaced by ``_``,
    then the first 8 hex digits of the release's digest (``Manifest.digest``).
    """
    safe = _release_name(model_version)
    if not safe or safe.startswith("."):
        raise ContractError(
            "model_version", f"{model_version!r} cannot name a release directory; use letters, digits, '._-'"
        )
    return f"{safe}-{digest[:8]}"


def check_model_version(model_version: Any, field: str = "model_version") -> str:
    """A version for a new release: one that names a release directory as it is.

    Stricter than ``release_id``, which replaces what it cannot use: a build keeps a version's
    release at ``<artifacts>/<version>``, so a version that needs a character replaced, or that
    is ``..`` or an absolute path, is refused here rather than written somewhere else.
    """
    if (
        not isinstance(model_version, str)
        or not model_version
        or model_version.startswith(".")
        or _release_name(model_version) != model_version
        or len(model_version) > MAX_VERSION_LENGTH
    ):
        raise ContractError(
            field,
            f"{model_version!r} cannot name a release directory; expected {RELEASE_NAME_RULE}, "
            f"at most {MAX_VERSION_LENGTH} characters, such as '1.4.0'",
        )
    return model_version


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Streamed, so a large artifact is never read whole into memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_member_name(name: Any, field: str = "name") -> str:
    """A manifest entry must name a plain file inside its release directory."""
    if not isinstance(name, str) or not name:
        raise ContractError(field, f"expected a file name, got {name!r}")
    norm = posixpath.normpath(name)
    if (
        name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or norm != name
        or norm in (".", "..")
        or norm.startswith("../")
    ):
        raise ContractError(
            field, f"{name!r} escapes the release directory; expected a relative name such as 'model.onnx'"
        )
    return name


def symlink_problem(directory: str | os.PathLike[str], name: str) -> str | None:
    """Why ``name`` may not be read from the release ``directory``: a component of it is a
    symbolic link; None when every component is a plain entry.

    A release holds regular files only. A link would make what is verified depend on
    where it points at the time it is read, and a copy (the edge's staging) would take
    the target's bytes while a check of the directory (``model_tools verify``) sees the
    link: every reader refuses it with this one message.
    """
    d = Path(directory)
    parts = PurePosixPath(name).parts
    for i in range(1, len(parts) + 1):
        part = "/".join(parts[:i])
        if os.path.islink(d / part):
            what = "a symbolic link" if i == len(parts) else f"under {part}, a symbolic link"
            return (
                f"{what} (to {os.readlink(d / part)}); a release holds regular files only: "
                "put the file itself in the release, then write the manifest again"
            )
    return None
