"""``edgeinfer-validate``: the post-deploy performance gate for an EdgeInfer sidecar.

The load engine is ``plugins/module_utils/_loadgen.py`` of this collection,
the same file the Ansible module ``edgeinfer.deploy.edgeinfer_benchmark``
runs on the edge. It has to live there: Ansible ships module_utils to the
managed host inside the module's payload, and only from that directory. So
this package does not copy it (two copies would drift, and the gate and the
operator's command would measure differently); it imports that one file:

1. as ``ansible_collections.edgeinfer.deploy.plugins.module_utils._loadgen``
   when the collection is importable (a collections path on ``sys.path``);
2. else by file path from the checkout this package sits in
   (``<repo>/plugins/module_utils/_loadgen.py``: the repository root is the
   collection), which is how ``pip install -e .`` and ``python -m`` run it;
3. else from an installed collection under ``ANSIBLE_COLLECTIONS_PATH`` or
   the default collection paths.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["loadgen", "loadgen_path"]

_NAME = "ansible_collections.edgeinfer.deploy.plugins.module_utils._loadgen"
_REL = Path("plugins") / "module_utils" / "_loadgen.py"


def _candidates() -> list[Path]:
    out = [Path(__file__).resolve().parent.parent / _REL]
    env = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS") or ""
    roots = [p for p in env.split(os.pathsep) if p]
    roots += [str(Path.home() / ".ansible" / "collections"), "/usr/share/ansible/collections"]
    out += [Path(r) / "ansible_collections" / "edgeinfer" / "deploy" / _REL for r in roots]
    return out


def _load() -> ModuleType:
    try:
        from ansible_collections.edgeinfer.deploy.plugins.module_utils import _loadgen

        return _loadgen
    except ImportError:
        pass
    for path in _candidates():
        if path.is_file():
            spec = importlib.util.spec_from_file_location("edgeinfer_validate._loadgen", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            # dataclasses resolve annotations through sys.modules: register before executing.
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return module
    tried = ", ".join(str(p) for p in _candidates())
    raise ImportError(
        f"the load engine _loadgen.py of the edgeinfer.deploy collection was not found (tried {tried}); "
        "run from the repository checkout (pip install -e .) or install the collection"
    )


loadgen = _load()
loadgen_path = str(Path(loadgen.__file__).resolve())
