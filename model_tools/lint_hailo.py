"""Check an ONNX graph against what the Hailo-8 parser accepts (see docs/model_tools.md).

Each violation names the nodes and the fix. The rules follow the Hailo export
constraints: an op allow-list, static batch-1 shapes, an NCHW ``[1,C,1,W]``
input, opset 11-13, Conv2d kernels ``(1,k)`` and weights as initializers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from .checks import dims as shape_of
from .checks import load_onnx

ALLOWED_OPS = frozenset(
    {
        "Conv",
        "Relu",
        "LeakyRelu",
        "Add",
        "Sub",
        "Mul",
        "Concat",
        "GlobalAveragePool",
        "AveragePool",
        "MaxPool",
        "Flatten",
        "Gemm",
        "MatMul",
        "Sigmoid",
        "Constant",
    }
)
OPSETS = (11, 12, 13)
FIXES = {
    "Transpose": "feed NCHW [1,9,1,100] and transpose on the host (model_tools export --target hailo)",
    "Slice": "express the causal chomp as left-only padding in the Conv pads attribute",
    "Squeeze": "use Flatten after GlobalAveragePool",
    "Unsqueeze": "keep the graph 4-D end to end; reshape on the host",
    "Reshape": "keep the graph 4-D end to end; use Flatten before the Gemm head",
    "Gather": "index on the host, not in the graph",
    "Pad": "fold the padding into the Conv pads attribute",
    "Dropout": "export in eval mode (model.eval())",
    "BatchNormalization": "fold BatchNorm into the preceding Conv before export",
    "ReduceMean": "use GlobalAveragePool for the time pooling",
}
_WEIGHT_NORM_OPS = {"ReduceL2", "Div", "Sqrt", "Pow", "ReduceSum"}


@dataclass
class Violation:
    rule: str
    nodes: list[str]
    message: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "nodes": self.nodes, "message": self.message, "fix": self.fix}


@dataclass
class LintReport:
    violations: list[Violation] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)
    opset: int | None = None

    @property
    def passed(self) -> bool:
        return not self.violations

    def rules(self) -> set[str]:
        return {v.rule for v in self.violations}

    def summary(self) -> str:
        return "; ".join(f"{v.message} -> {v.fix}" for v in self.violations) or "no violations"

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "opset": self.opset,
            "ops": self.ops,
            "violations": [v.to_dict() for v in self.violations],
        }


def _opset(model: onnx.ModelProto) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _io_violations(inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]) -> list[Violation]:
    """One input, static batch-1 shapes everywhere, and an NCHW ``[1,C,1,W]`` input."""
    found = []
    if len(inputs) != 1:
        found.append(
            Violation(
                "inputs",
                [i.name for i in inputs],
                f"{len(inputs)} graph inputs; expected 1",
                "export a single-input encoder",
            )
        )
    for vi in inputs + outputs:
        dims = shape_of(vi)
        if any(not isinstance(d, int) or d <= 0 for d in dims):
            found.append(
                Violation(
                    "static_shapes",
                    [vi.name],
                    f"{vi.name} has dynamic dims {dims}",
                    "export with static shapes, batch 1",
                )
            )
        elif dims and dims[0] != 1:
            found.append(
                Violation("static_shapes", [vi.name], f"{vi.name} batch {dims[0]}; expected 1", "export with batch 1")
            )
    if inputs:
        dims = shape_of(inputs[0])
        if len(dims) != 4 or dims[2] != 1:
            found.append(
                Violation(
                    "input_layout",
                    [inputs[0].name],
                    f"input {inputs[0].name} shape {dims}; expected NCHW [1,C,1,W] such as [1,9,1,100]",
                    "export with --target hailo (Conv2d over H=1)",
                )
            )
    return found


def _count_ops(g: onnx.GraphProto) -> dict[str, int]:
    ops: dict[str, int] = {}
    for node in g.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return ops


def _op_violations(g: onnx.GraphProto, input_name: str | None) -> list[Violation]:
    """One violation per op outside the allow-list, saying whether it sits at the input and how to avoid it."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    by_op: dict[str, list[str]] = {}
    for node in g.node:
        if node.op_type not in ALLOWED_OPS or node.domain not in ("", "ai.onnx"):
            by_op.setdefault(node.op_type, []).append(node.name or node.output[0])
    found = []
    for op, nodes in sorted(by_op.items()):
        at_input = input_name is not None and any(
            n.name in nodes or n.output[0] in nodes for n in consumers.get(input_name, []) if n.op_type == op
        )
        where = "at the input" if at_input else "mid-graph"
        fix = FIXES.get(
            op, "replace it with an op from the allow-list: " + ", ".join(sorted(ALLOWED_OPS - {"Constant"}))
        )
        if op in _WEIGHT_NORM_OPS:
            fix = "remove weight norm before export (fold g * v / ||v|| into the Conv weight)"
        found.append(Violation(f"op:{op}", nodes, f"{len(nodes)} {op} node(s) {where}: {', '.join(nodes[:6])}", fix))
    return found


def _conv_violations(g: onnx.GraphProto, inits: set[str]) -> list[Violation]:
    """Conv kernels must be 2-D ``(1,k)`` and their weights initializers (weight norm computes them)."""
    bad_kernel, computed_weight = [], []
    for node in g.node:
        if node.op_type != "Conv":
            continue
        name = node.name or node.output[0]
        kernel = next((list(a.ints) for a in node.attribute if a.name == "kernel_shape"), None)
        if kernel is not None and (len(kernel) != 2 or kernel[0] != 1):
            bad_kernel.append(f"{name} {kernel}")
        if len(node.input) > 1 and node.input[1] not in inits:
            computed_weight.append(name)
    found = []
    if bad_kernel:
        found.append(
            Violation(
                "conv_kernel",
                [k.rsplit(" ", 1)[0] for k in bad_kernel],
                f"{len(bad_kernel)} Conv node(s) without a 2-D (1,k) kernel: {', '.join(bad_kernel[:4])}",
                "export Conv1d as Conv2d with kernel (1,k) (model_tools export --target hailo)",
            )
        )
    if computed_weight:
        found.append(
            Violation(
                "conv_weights",
                computed_weight,
                f"{len(computed_weight)} Conv weight(s) computed in the graph, not initializers: {', '.join(computed_weight[:4])}",
                "remove weight norm before export (fold g * v / ||v|| into the Conv weight)",
            )
        )
    return found


def lint_model(model: onnx.ModelProto) -> LintReport:
    """Every Hailo-8 violation in ``model``: opset, then inputs and shapes, then ops, then Conv nodes."""
    g = model.graph
    opset = _opset(model)
    report = LintReport(opset=opset)
    if opset not in OPSETS:
        report.violations.append(
            Violation("opset", [], f"opset {opset} is outside {OPSETS[0]}-{OPSETS[-1]}", "re-export with --opset 13")
        )
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    report.violations += _io_violations(inputs, list(g.output))
    report.ops = _count_ops(g)
    report.violations += _op_violations(g, inputs[0].name if inputs else None)
    report.violations += _conv_violations(g, inits)
    return report


def lint_file(path: str | Path) -> LintReport:
    return lint_model(load_onnx(path, "onnx"))
