# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sidecar's compose files on an edge, written with the release they serve.

Layout under the compose directory::

    compose.yaml            the service definition (profiles cpu and hailo)
    .env                    what compose reads beside it: the serving release's settings
    env/<release>.env       the .env each release served with, which a revert restores
    admin_token             the hot-reload token, made once, readable by the sidecar user only

Every file is written to a temporary name and renamed into place, so compose never reads a
half-written file. Standard library only: it runs on the edge's own Python.
"""

from __future__ import annotations

import os
import secrets
import string

from ansible_collections.edgeinfer.deploy.plugins.module_utils._store import fsync_dir

# .env keys compose.yaml does not pass to the container (the deployment guide's names, for the tools
# that read the file): they change with every release, and a change of these alone needs no compose up.
INFO_KEYS = ("MODEL_VERSION", "MODEL_ACCURACY", "HEF_PATH")
# The sidecar's user and group in the image (sidecar/Dockerfile): it reads the token.
SIDECAR_UID = 10001
TOKEN_ALPHABET = string.ascii_letters + string.digits


def _read(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _write(path, text, mode=0o644, owner=None):
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    if owner is not None and os.geteuid() == 0:
        os.chown(tmp, owner, owner)
    os.replace(tmp, path)
    # The rename itself durable, as models/current's is: after a power cut the env matches current.
    fsync_dir(os.path.dirname(path) or ".")


def env_keys(text):
    """``{key: value}`` of an env file (comments and blank lines skipped)."""
    out = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value
    return out


def needs_compose(result):
    """Whether a write (ComposeFiles.write's result) changed what compose makes of the sidecar:
    compose.yaml, or an .env key other than INFO_KEYS."""
    return bool(result["compose_changed"] or set(result["env_changed_keys"]) - set(INFO_KEYS))


class ComposeFiles:
    def __init__(self, directory):
        self.dir = os.path.abspath(directory)
        self.env_path = os.path.join(self.dir, ".env")
        self.compose_path = os.path.join(self.dir, "compose.yaml")
        self.token_path = os.path.join(self.dir, "admin_token")
        self.env_dir = os.path.join(self.dir, "env")

    def release_env(self, release):
        return os.path.join(self.env_dir, f"{release}.env")

    def write(self, release, env=None, compose=None, before=None, token=True, check_mode=False):
        """Make the files serve ``release``: ``env`` (text) as .env, or, without it, the env the
        release served with before (env/<release>.env) when there is one; ``compose`` as
        compose.yaml; the token when missing. The .env being replaced is kept as the env of
        ``before`` (the release it served) unless that one is kept already.

        Returns ``{changed, written, env_changed_keys, diff}``; in check mode nothing is written.
        """
        old_env = _read(self.env_path)
        if env is None:
            env = _read(self.release_env(release)) if release else None
        plan = []  # (path, text, mode, owner)
        if before and old_env is not None and not os.path.exists(self.release_env(before)):
            plan.append((self.release_env(before), old_env, 0o644, None))
        if compose is not None and _read(self.compose_path) != compose:
            plan.append((self.compose_path, compose, 0o644, None))
        if env is not None and old_env != env:
            plan.append((self.env_path, env, 0o644, None))
        if env is not None and release and _read(self.release_env(release)) != env:
            plan.append((self.release_env(release), env, 0o644, None))
        if token and not os.path.exists(self.token_path):
            value = "".join(secrets.choice(TOKEN_ALPHABET) for dummy in range(40))
            plan.append((self.token_path, value, 0o400, SIDECAR_UID))
        old_keys, new_keys = env_keys(old_env), env_keys(env if env is not None else old_env)
        changed_keys = sorted(k for k in set(old_keys) | set(new_keys) if old_keys.get(k) != new_keys.get(k))
        paths = [step[0] for step in plan]
        written = [os.path.relpath(path, self.dir) for path in paths]
        result = {
            "changed": bool(plan),
            "written": written,
            "env_changed": self.env_path in paths,
            "compose_changed": self.compose_path in paths,
            "env_changed_keys": changed_keys,
            "diff": {"before": old_env or "", "after": env if env is not None else (old_env or "")},
        }
        if check_mode or not plan:
            return result
        os.makedirs(self.env_dir, mode=0o755, exist_ok=True)
        for path, text, mode, owner in plan:
            _write(path, text, mode, owner)
        return result
