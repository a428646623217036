"""A user's mistake on the command line is refused before any work, with the option named, the
form expected and the exit code of docs/model_tools.md's table, never with a Python traceback."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from model_tools.cli import main
from model_tools.errors import CheckpointError, InputError
from model_tools.golden import make_golden
from model_tools.quantize import quantize_check
from model_tools.release import build

DOCS = Path(__file__).resolve().parents[3] / "docs" / "model_tools.md"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """The exit code and stderr of one command; argparse's refusals exit through SystemExit."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


@pytest.fixture(scope="module")
def quantize_inputs(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> dict[str, Path]:
    """What quantize-check reads besides the ONNX: a small calibration set, a golden set, a config."""
    d = tmp_path_factory.mktemp("qin")
    np.save(d / "calibration.npy", np.zeros((4, 1, 100, 9), np.float32))
    assert main(["golden", "--checkpoint", str(checkpoint), "--out", str(d / "golden.json"), "--count", "2"]) == 0
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(d), "--target", "hailo"]) == 0
    return {"calibration": d / "calibration.npy", "golden": d / "golden.json", "hailo": d / "model_hailo.onnx"}


@pytest.mark.parametrize("version", ["../escaped", "/abs/path", "..", ".hidden", "", "a b", "x" * 247])
def test_build_refuses_a_version_that_cannot_name_a_release_directory_before_any_work(
    tmp_path: Path, capsys, version: str
) -> None:
    # The checkpoint does not exist: only a check made before loading it can answer first.
    rc, err = run(
        capsys, "build", "--checkpoint", tmp_path / "absent.pt", "--out", tmp_path / "r", "--model-version", version
    )
    assert rc == 2 and "--model-version" in err and "letters, digits and '._-'" in err, err
    assert list(tmp_path.iterdir()) == []


def test_manifest_refuses_a_version_that_cannot_name_a_release_directory(tmp_path: Path, capsys, keys) -> None:
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    rc, err = run(capsys, "manifest", "--release", tmp_path, "--model-version", "..", "--signing-key", keys[0])
    assert rc == 2 and "--model-version: '..' cannot name a release directory" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # neither manifest nor signature


def test_adopt_refuses_a_bad_version_before_reading_the_onnx(tmp_path: Path, capsys) -> None:
    rc, err = run(
        capsys, "adopt", "--onnx", tmp_path / "absent.onnx", "--config", tmp_path / "c.json",
        "--out", tmp_path / "r", "--model-version", "/abs/path",
    )  # fmt: skip
    assert rc == 2 and "--model-version: '/abs/path'" in err, err


FLOOR_OPTIONS = [
    ["quantize-check", "--onnx", "m", "--calibration", "c", "--golden", "g", "--config", "k", "--out", "o", "--floor"],
    ["compile", "--onnx", "m", "--calibration", "c", "--golden", "g", "--config", "k", "--out", "o", "--floor"],
    ["build", "--checkpoint", "c", "--out", "o", "--model-version", "v", "--int8-floor"],
    ["build", "--checkpoint", "c", "--out", "o", "--model-version", "v", "--hailo-floor"],
    ["adopt", "--onnx", "m", "--config", "k", "--out", "o", "--model-version", "v", "--int8-floor"],
]


@pytest.mark.parametrize("argv", FLOOR_OPTIONS, ids=lambda a: f"{a[0]} {a[-1]}")
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1.5", "-2", "high"])
def test_a_floor_that_is_not_a_cosine_is_refused_while_parsing(capsys, argv: list[str], value: str) -> None:
    rc, err = run(capsys, *argv[:-1], f"{argv[-1]}={value}")  # '=': argparse takes -inf for an option
    assert rc == 2 and f"argument {argv[-1]}: expected a cosine similarity" in err, err


def test_the_functions_refuse_a_nan_floor_too(tmp_path: Path, norm, checkpoint) -> None:
    with pytest.raises(InputError, match="--floor: expected a cosine similarity"):
        quantize_check(tmp_path / "m.onnx", np.zeros((1, 100, 9)), None, norm, tmp_path / "o.onnx", float("nan"))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="--int8-floor: expected a cosine similarity"):
        build(tmp_path / "absent.pt", tmp_path / "r", "v1", int8_floor=float("nan"))


@pytest.mark.parametrize("opset", ["0", "99", "6", "14"])
def test_build_and_export_refuse_an_opset_naming_it(tmp_path: Path, capsys, checkpoint, opset: str) -> None:
    # 14 is one torch exports, but not one the Hailo DFC parses, and both export all three targets.
    rc, err = run(
        capsys, "build", "--checkpoint", checkpoint, "--out", tmp_path / "r", "--model-version", "v", "--opset", opset
    )
    assert rc == 2 and f"--opset: {opset}" in err, err
    rc, err = run(capsys, "export", "--checkpoint", checkpoint, "--out", tmp_path / "e", "--opset", opset)
    assert rc == 2 and f"--opset: {opset}" in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_onnx_is_refused_as_not_onnx(tmp_path: Path, capsys, origin_dir: Path, quantize_inputs) -> None:
    cut = tmp_path / "cut.onnx"
    cut.write_bytes((origin_dir / "tcn_encoder_for_edgeinfer.onnx").read_bytes()[:5000])
    q = quantize_inputs
    rc, err = run(
        capsys, "quantize-check", "--onnx", cut, "--calibration", q["calibration"], "--golden", q["golden"],
        "--config", origin_dir / "model_config.json", "--out", tmp_path / "int8.onnx",
    )  # fmt: skip
    assert rc == 2 and f"--onnx {cut}: not an ONNX model" in err, err
    rc, err = run(
        capsys, "adopt", "--onnx", cut, "--config", origin_dir / "model_config.json",
        "--out", tmp_path / "r", "--model-version", "v1",
    )  # fmt: skip
    assert rc == 2 and f"--onnx {cut}: not an ONNX model" in err, err


def test_quantize_check_refuses_a_graph_of_another_input_shape(
    tmp_path: Path, capsys, quantize_inputs, origin_dir
) -> None:
    q = quantize_inputs
    rc, err = run(
        capsys, "quantize-check", "--onnx", q["hailo"], "--calibration", q["calibration"], "--golden", q["golden"],
        "--config", origin_dir / "model_config.json", "--out", tmp_path / "int8.onnx",
    )  # fmt: skip
    assert rc == 2 and "[1, 9, 1, 100]" in err and "expected imu_window [1,100,9]" in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["golden", "--out", "g.json", "--count", "0"],
        ["golden", "--out", "g.json", "--count", "-1"],
        ["build", "--out", "r", "--model-version", "v", "--golden-count", "0"],
        ["adopt", "--onnx", "m", "--config", "k", "--out", "r", "--model-version", "v", "--golden-count", "-1"],
        ["calibrate", "--config", "k", "--out", "c.npy", "--min-windows", "0"],
        ["golden", "--out", "g.json", "--seed", "-1"],
    ],
    ids=lambda a: " ".join(a[-2:]),
)
def test_a_count_or_seed_out_of_range_is_refused_while_parsing(capsys, checkpoint, argv: list[str]) -> None:
    if argv[0] in ("golden", "build"):
        argv = [argv[0], "--checkpoint", str(checkpoint), *argv[1:]]
    rc, err = run(capsys, *argv)
    assert rc == 2 and f"argument {argv[-2]}: expected a whole number" in err, err


def test_an_empty_golden_set_is_refused_by_the_function(norm, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="count: expected a whole number of at least 1, got 0"):
        make_golden(lambda x: x[:, 0, :], norm, "m", count=0)
    with pytest.raises(InputError, match="--golden-count: expected a whole number of at least 1, got 0"):
        build(tmp_path / "absent.pt", tmp_path / "r", "v1", golden_count=0)


@pytest.mark.parametrize("command", ["export", "calibrate", "keygen", "build", "golden", "init"])
def test_an_out_path_under_a_regular_file_is_refused_naming_it(
    tmp_path: Path, capsys, checkpoint, origin_dir, command: str
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    out = blocker / "sub" / "out"
    argv = {
        "export": ["--checkpoint", checkpoint, "--target", "cpu"],
        "calibrate": ["--config", origin_dir / "model_config.json", "--count", "1024"],
        "keygen": [],
        "build": ["--checkpoint", checkpoint, "--model-version", "v1"],
        "golden": ["--checkpoint", checkpoint, "--count", "2"],
        "init": [],
    }[command]
    rc, err = run(capsys, command, *argv, "--out", out)
    assert rc == 2 and f"--out {out}: {blocker} is a file" in err, err


def test_a_signing_key_is_checked_before_the_build_starts(tmp_path: Path, capsys, checkpoint, origin_dir) -> None:
    not_a_key = tmp_path / "k.pem"
    pem = "PRIVATE " + "KEY"  # not spelled whole: a packaged file holding the marker reads as a key
    not_a_key.write_text(f"-----BEGIN {pem}-----\nnope\n-----END {pem}-----\n")
    for key, says in ((tmp_path / "absent.pem", "does not exist"), (not_a_key, "expected an ed25519 private key")):
        rc, err = run(
            capsys,
            "build",
            "--checkpoint",
            checkpoint,
            "--out",
            tmp_path / "r",
            "--model-version",
            "v1",
            "--signing-key",
            key,
        )
        assert rc == 2 and f"--signing-key {key}: " in err and says in err, err
        rc, err = run(
            capsys, "adopt", "--onnx", origin_dir / "tcn_encoder_for_edgeinfer.onnx", "--config",
            origin_dir / "model_config.json", "--out", tmp_path / "r", "--model-version", "v1", "--signing-key", key,
        )  # fmt: skip
        assert rc == 2 and f"--signing-key {key}: " in err and says in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pem"]  # no staging directory was made


def test_a_missing_config_is_named_once(tmp_path: Path, capsys) -> None:
    rc, err = run(capsys, "calibrate", "--config", tmp_path / "absent.json", "--out", tmp_path / "c.npy")
    assert rc == 2 and err.count("model_config") == 1 and err.count("absent.json") == 1, err


def test_a_missing_checkpoint_exits_with_the_code_the_docs_give_it(tmp_path: Path, capsys) -> None:
    row = next(line for line in DOCS.read_text().splitlines() if "`CheckpointError`" in line)
    code = int(re.match(r"\|\s*(\d+)\s*\|", row).group(1))  # type: ignore[union-attr]
    assert code == CheckpointError.exit_code and "does not exist" in row and "not a PyTorch file" in row, row
    rc, err = run(capsys, "export", "--checkpoint", tmp_path / "absent.pt", "--out", tmp_path / "e")
    assert rc == code and "absent.pt does not exist" in err, err
