"""Strict checkpoint loading: mismatches raise with the keys and shapes, nothing loads silently."""
import pytest
import torch
from torch import nn

from connectomics.checkpoint import load_weights, load_weights_file
from connectomics.errors import CheckpointMismatchError
from connectomics.model import RSUNet, UNetResidual3D

FILTERS = [4, 8, 12]


def unet(filters=FILTERS, out=2):
    return UNetResidual3D(1, out, filters)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_and_checkpoint_dict():
    torch.manual_seed(0)
    src, dst = unet(), unet()
    assert not same_weights(src, dst)
    result = load_weights(dst, {"state_dict": src.state_dict(), "architecture": "unet_residual_3d"})
    assert same_weights(src, dst)
    assert len(result.loaded) == len(src.state_dict()) and not (result.missing or result.unexpected)


def test_data_parallel_prefix_and_wrapper():
    src, dst = unet(), unet()
    prefixed = {f"module.{k}": v for k, v in src.state_dict().items()}
    load_weights(nn.DataParallel(dst), prefixed)  # a wrapped model and a wrapped checkpoint
    assert same_weights(src, dst)


def test_other_architecture_raises_and_names_both():
    model = unet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    checkpoint = {"state_dict": RSUNet(1, 2, FILTERS, [1, 1]).state_dict(), "architecture": "rsunet"}
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(model, checkpoint, source="ckpt.pth")
    message = str(info.value)
    n_missing = len(model.state_dict().keys() - checkpoint["state_dict"].keys())
    assert "ckpt.pth" in message and "'unet_residual_3d'" in message and "'rsunet'" in message
    assert f"{n_missing} keys missing from the checkpoint" in message
    n_unexpected = len(checkpoint["state_dict"].keys() - model.state_dict().keys())
    assert f"{n_unexpected} unexpected keys in the checkpoint: embed.1.conv.weight" in message
    assert "shape differences: embed.0.conv.weight (checkpoint (4, 1, 3, 3, 3) vs model (4, 1, 1, 5, 5))" in message
    assert "set MODEL.ARCHITECTURE" in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


def test_shape_difference_lists_shapes():
    checkpoint = unet(filters=[4, 8, 16]).state_dict()
    with pytest.raises(CheckpointMismatchError, match=r"shape differences: .*checkpoint \(16, 8, 1, 3, 3\) "
                                                      r"vs model \(12, 8, 1, 3, 3\)") as info:
        load_weights(unet(), checkpoint)
    assert "FILTERS" in str(info.value) and "missing" not in str(info.value)


def test_non_strict_loads_the_matching_part_only():
    src = unet(out=1)  # only the last conv differs in shape
    dst = unet(out=2)
    head_bias = dst.head[1].conv.bias.detach().clone()
    result = load_weights(dst, src.state_dict(), strict=False)
    assert [k for k, _, _ in result.mismatched] == ["head.1.conv.weight", "head.1.conv.bias"]
    assert len(result.loaded) == len(src.state_dict()) - 2
    assert torch.equal(dst.embed[0].conv.weight, src.embed[0].conv.weight)
    assert torch.equal(dst.head[1].conv.bias, head_bias)
    with pytest.raises(CheckpointMismatchError, match="no key matches"):
        load_weights(dst, {"foo.weight": torch.zeros(1)}, strict=False)


def test_load_weights_file(tmp_path):
    src, dst = unet(), unet()
    path = tmp_path / "checkpoint_000010.pth.tar"
    torch.save({"iteration": 10, "state_dict": src.state_dict(), "architecture": "unet_residual_3d"}, path)
    load_weights_file(dst, str(path))
    assert same_weights(src, dst)
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_weights_file(dst, str(tmp_path / "nothing.pth"))
    with pytest.raises(TypeError, match="state dict"):
        load_weights(dst, [1, 2])
