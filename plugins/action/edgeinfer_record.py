# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""edgeinfer_record: a run's records written on the controller, in the task's own process.

ansible.builtin.copy delegated to localhost would do the same through a module run per file
(about half a second each on the bench); a deploy writes two files per edge and a summary."""

from __future__ import annotations

import os
import tempfile

from ansible.plugins.action import ActionBase

ARGS = {
    "dir": {"type": "path", "required": True},
    "files": {"type": "dict", "required": True},
    "mode": {"type": "raw", "default": "0644"},
}


def _write(path, content, mode):
    """``content`` as ``path``, whole or not at all; False when the file already holds it."""
    data = content.encode("utf-8")
    try:
        with open(path, "rb") as fh:
            if fh.read() == data and os.stat(path).st_mode & 0o7777 == mode:
                return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def _mode(value):
    """The permission bits of ``value``, None when it is none. An integer is taken as YAML gave it: an
    unquoted 0644 reads as the octal number, as ansible.builtin.file takes it; text is read as octal."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        mode = value
    else:
        try:
            mode = int(str(value), 8)
        except ValueError:
            return None
    return mode if 0 <= mode <= 0o7777 else None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self.validate_argument_spec(argument_spec=ARGS)[1]
        mode = _mode(args["mode"])
        if mode is None:
            return dict(
                result,
                failed=True,
                msg=f"mode: expected an octal mode from 0000 to 7777 such as '0644', got {args['mode']!r}",
            )
        directory, written = os.path.expanduser(args["dir"]), []
        for name, content in args["files"].items():
            if not isinstance(name, str) or not name or os.path.basename(name) != name or name in (".", ".."):
                return dict(result, failed=True, msg=f"files: expected plain file names, got {name!r}")
            if not isinstance(content, str):
                return dict(result, failed=True, msg=f"files[{name}]: expected text, got {type(content).__name__}")
            written.append(os.path.join(directory, name))
        if not self._task.check_mode:
            try:
                os.makedirs(directory, mode=0o755, exist_ok=True)
                for path, content in zip(written, args["files"].values(), strict=True):
                    _write(path, content, mode)
            except OSError as exc:
                return dict(result, failed=True, msg=f"dir: cannot write the records under {directory}: {exc}")
        return dict(result, changed=False, written=written)
