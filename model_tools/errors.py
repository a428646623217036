"""Typed errors; each carries the process exit code the CLI returns for it.

Callers (the CLI, Ansible modules) catch :class:`ModelToolsError` and read
``exit_code`` and ``details``; anything else escaping is a bug.
"""

from __future__ import annotations

from typing import Any


class ModelToolsError(Exception):
    """Base class. ``details`` is JSON-serialisable and lands in ``--json`` output."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.kind, "message": self.message, "exit_code": self.exit_code, **self.details}


class InputError(ModelToolsError):
    """A file or argument given by the user is missing or malformed."""

    exit_code = 2
    kind = "input"


class DfcMissingError(ModelToolsError):
    """The Hailo Dataflow Compiler (``hailo_sdk_client``) cannot be imported."""

    exit_code = 3
    kind = "dfc_missing"


class CheckpointError(ModelToolsError):
    """The checkpoint does not exist, is not a PyTorch file, or does not fit the TCN-VAE architecture.

    Its own exit code, though a missing file is otherwise an InputError (2): a caller can tell
    a wrong checkpoint from every other mistake by the code alone.
    """

    exit_code = 4
    kind = "checkpoint"


class ParityError(ModelToolsError):
    """An exported graph does not reproduce the PyTorch model."""

    exit_code = 5
    kind = "parity"


class QuantizationError(ModelToolsError):
    """INT8 (ONNX Runtime or Hailo emulator) strays too far from fp32."""

    exit_code = 6
    kind = "quantization"


class HailoLintError(ModelToolsError):
    """An ONNX graph breaks the Hailo-8 constraints."""

    exit_code = 7
    kind = "hailo_lint"


class CompileError(ModelToolsError):
    """The Dataflow Compiler failed or produced something that is not a HEF."""

    exit_code = 8
    kind = "compile"


class SignatureError(ModelToolsError):
    """A release does not verify: tampered file, tampered manifest, wrong key, bad name."""

    exit_code = 9
    kind = "verify"
