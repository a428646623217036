"""``hailo-smoke``: run the real Dataflow Compiler path end to end on a seeded untrained model.

For someone with a DFC install: it proves that the API calls, the model script and
the graph are accepted and that the emulator agrees with ONNX Runtime. The HEF it
writes comes from an UNTRAINED model and is for this check only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeinfer_contract import FILES

from .calibrate import make_calibration, save_calibration
from .checkpoint import load_checkpoint
from .checks import check_out
from .compile_hef import compile_hef, dfc_version, import_dfc
from .errors import DfcMissingError
from .export import export, reference_embeddings
from .golden import make_golden
from .release import init_checkpoint


def hailo_smoke(out: str | Path, hw_arch: str = "hailo8", allow_double: bool = False) -> dict[str, Any]:
    dfc = import_dfc()
    if getattr(dfc, "IS_TEST_DOUBLE", False) and not allow_double:
        raise DfcMissingError(
            "hailo_sdk_client on sys.path is the test double (tests/doubles), not the Dataflow Compiler"
        )
    d = check_out(out, "--out", directory=True)
    d.mkdir(parents=True, exist_ok=True)
    ck = init_checkpoint(d / "untrained.pth", seed=0, force=True)
    loaded = load_checkpoint(ck["checkpoint"])
    assert loaded.normalization is not None
    norm = loaded.normalization
    exported = export(loaded, norm, d, ("hailo",))
    golden = make_golden(lambda x: reference_embeddings(loaded.model, x), norm, loaded.default_model_id, 64)
    golden.save(d / FILES["golden"])
    calib, _ = make_calibration(norm)
    save_calibration(d / FILES["calibration"], calib)
    result = compile_hef(d / FILES["onnx_hailo"], calib, golden, norm, d, hw_arch)
    return {
        "dfc_version": dfc_version(dfc),
        "out": str(d),
        "lint_hailo": exported["targets"]["hailo"]["lint_hailo"]["passed"],
        **result,
    }
