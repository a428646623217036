"""Loading origin and model_tools checkpoints into the TCN-VAE."""

from __future__ import annotations

import pytest
import torch

from model_tools.checkpoint import load_checkpoint, training_state_dict
from model_tools.errors import CheckpointError
from model_tools.model import TCNVAE, parameter_count

X = torch.randn(3, 100, 9, generator=torch.Generator().manual_seed(0))


def _mu(model: TCNVAE) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(X)


def test_origin_encoder_only_checkpoint_names_the_missing_head_and_the_alternative(origin_dir):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(origin_dir / "tcn_encoder_for_edgeinfer.pth")
    msg = err.value.message
    assert "fc_mu.weight" in msg and "fc_mu.bias" in msg
    assert "adopt" in msg and "full training checkpoint" in msg
    assert err.value.details["missing_keys"] == ["fc_mu.weight", "fc_mu.bias"]
    assert err.value.exit_code == 4


def test_parameter_counts_match_the_origin_model():
    m = TCNVAE()
    assert parameter_count(m.tcn_encoder) == 426_432
    from model_tools.model import ExportEncoder

    assert parameter_count(ExportEncoder(m)) == 441_984


def test_init_checkpoint_is_marked_untrained_and_loads(loaded):
    assert loaded.untrained is True
    assert loaded.normalization is not None
    assert loaded.default_model_id == f"tcn-vae-{loaded.sha256[:12]}"


@pytest.mark.parametrize("layout", ["raw", "wrapped", "new_style", "plain_weights", "aliases_only", "module_prefix"])
def test_every_checkpoint_layout_gives_the_same_model(tmp_path, loaded, layout):
    sd = training_state_dict(loaded.model)
    if layout == "new_style":
        sd = loaded.model.state_dict()
    elif layout == "plain_weights":  # weight norm already removed
        sd = {k: v for k, v in sd.items() if not k.endswith(("weight_g", "weight_v"))}
        for block in range(3):
            for conv in ("conv1", "conv2"):
                sd[f"tcn_encoder.network.{block}.{conv}.weight"] = getattr(
                    loaded.model.tcn_encoder.network[block], conv
                ).weight.detach()
    elif layout == "aliases_only":
        sd = {k.replace(".conv1.", ".net.0.").replace(".conv2.", ".net.4."): v for k, v in sd.items()}
    elif layout == "module_prefix":
        sd = {f"module.{k}": v for k, v in sd.items()}
    obj = {"model_state_dict": sd, "epoch": 7, "metrics": {"acc": 0.7}} if layout == "wrapped" else sd
    path = tmp_path / "c.pth"
    torch.save(obj, path)
    got = load_checkpoint(path)
    torch.testing.assert_close(_mu(got.model), _mu(loaded.model), rtol=1e-5, atol=1e-6)
    if layout == "wrapped":
        assert got.meta["epoch"] == 7


def test_duplicated_origin_aliases_load_and_training_heads_are_ignored(tmp_path, loaded):
    sd = training_state_dict(loaded.model)
    for k, v in list(sd.items()):
        if ".conv1." in k:
            sd[k.replace(".conv1.", ".net.0.")] = v.clone()
    sd["decoder_fc.weight"] = torch.zeros(2, 2)
    sd["activity_classifier.0.weight"] = torch.zeros(13, 64)
    torch.save(sd, tmp_path / "c.pth")
    got = load_checkpoint(tmp_path / "c.pth")
    assert got.ignored_keys == ["activity_classifier.0.weight", "decoder_fc.weight"]


def test_conflicting_alias_is_refused(tmp_path, loaded):
    sd = training_state_dict(loaded.model)
    key = "tcn_encoder.network.0.conv1.bias"
    sd[key.replace("conv1", "net.0")] = sd[key] + 1
    torch.save(sd, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match="alias"):
        load_checkpoint(tmp_path / "c.pth")


def test_mismatch_lists_missing_and_unexpected_keys(tmp_path, loaded):
    sd = training_state_dict(loaded.model)
    del sd["fc_logvar.bias"]
    sd["surprise.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "c.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "c.pth")
    assert err.value.details["missing_keys"] == ["fc_logvar.bias"]
    assert err.value.details["unexpected_keys"] == ["surprise.weight"]
    assert (
        "missing keys: fc_logvar.bias" in err.value.message and "unexpected keys: surprise.weight" in err.value.message
    )


def test_architecture_comes_from_model_config(tmp_path):
    torch.manual_seed(0)
    small = TCNVAE(hidden_dims=[32, 32], latent_dim=16)
    torch.save(training_state_dict(small), tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_checkpoint(tmp_path / "c.pth")  # default architecture [64,128,256]
    got = load_checkpoint(tmp_path / "c.pth", config={"hidden_dims": [32, 32], "model_specs": {"latent_dimension": 16}})
    assert got.arch.hidden_dims == (32, 32) and got.arch.latent_dim == 16


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "x.pth").write_bytes(b"not torch")
    with pytest.raises(CheckpointError, match="not a PyTorch file"):
        load_checkpoint(tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pth")


def test_the_same_seed_gives_the_same_checkpoint_bytes_in_any_process_and_under_any_name(tmp_path):
    import subprocess
    import sys

    from edgeinfer_contract import sha256_file
    from model_tools.release import init_checkpoint

    here = init_checkpoint(tmp_path / "a" / "demo.pt", seed=5)
    code = "import sys; from model_tools.release import init_checkpoint; init_checkpoint(sys.argv[1], seed=5)"
    other = tmp_path / "b" / "another-name.pth"
    subprocess.run([sys.executable, "-c", code, str(other)], check=True, timeout=120)
    # The sha256 names the model (tcn-vae-<sha256[:12]>): a new checkout must not make a new model.
    assert here["sha256"] == sha256_file(other)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["demo.pt"]  # no temp file left
