"""Architectures: parameter counts of the MitoEM models, shapes, gradients, blocks vs oracles."""
import pytest
import torch
import torch.nn.functional as F

from connectomics.config import get_cfg_defaults
from connectomics.model import MODEL_REGISTRY, RSUNet, UNetResidual3D, blocks, build_model
from connectomics.model.rsunet import UpsampleMod

SMALL = [8, 16, 24, 32, 48]  # the CPU-sized filters of the synthetic config


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


pytestmark = pytest.mark.usefixtures("one_thread")


def bc_cfg(architecture, filters):
    cfg = get_cfg_defaults()
    cfg.MODEL.ARCHITECTURE = architecture
    cfg.MODEL.FILTERS = filters
    cfg.MODEL.TARGET_OPT = ["0", "4-2-1"]
    cfg.MODEL.OUT_PLANES = 2
    return cfg


def test_unet_residual_parameter_count_without_dead_layers():
    # spec 3.3: 1,634,482 - 17,312 (unused projectors) - 69,412 (discarded middle[1..3])
    assert n_params(UNetResidual3D(1, 2, [28, 36, 48, 64, 80])) == 1_547_758
    assert n_params(build_model(bc_cfg("unet_residual_3d", [28, 36, 48, 64, 80]))) == 1_547_758


@pytest.mark.parametrize("partial", [False, True])
def test_rsunet_parameter_counts(partial):
    assert n_params(RSUNet(1, 2, [16, 32, 48, 64, 80], [1, 1], partial_conv=partial)) == 1_852_610
    assert n_params(RSUNet(1, 2, [28, 36, 48, 64, 80], [1, 1], partial_conv=partial)) == 2_023_926


def test_build_model_honours_filters_and_twin_decoders():
    model = build_model(bc_cfg("rsunet", [16, 32, 48, 64, 80]))
    assert n_params(model) == 1_852_610 and len(model.decoders) == 2
    cfg = bc_cfg("rsunet", SMALL)
    cfg.MODEL.TARGET_OPT, cfg.MODEL.OUT_PLANES = ["0"], 1
    single = build_model(cfg)
    assert len(single.decoders) == 1 and single.encoders[0].entry.conv.out_channels == 8


@pytest.mark.parametrize("arch", sorted(MODEL_REGISTRY))
@pytest.mark.parametrize("z", [5, 8, 17])
def test_output_shapes(arch, z):
    model = build_model(bc_cfg(arch, SMALL))
    for y, x in [(16, 32), (48, 16)]:
        with torch.no_grad():
            out = model(torch.rand(2, 1, z, y, x))
        assert out.shape == (2, 2, z, y, x) and out.dtype == torch.float32
        assert torch.isfinite(out).all()
        assert out.min() < 0 or out.max() > 1 or z == 5  # logits, no sigmoid inside


@pytest.mark.parametrize("arch", sorted(MODEL_REGISTRY))
def test_input_errors_are_clear(arch):
    model = build_model(bc_cfg(arch, SMALL))
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.rand(1, 1, 4, 24, 32))
    with pytest.raises(ValueError, match="IN_PLANES"):
        model(torch.rand(1, 2, 4, 16, 16))


@pytest.mark.parametrize("arch", sorted(MODEL_REGISTRY))
@pytest.mark.parametrize("norm", ["none", "bn", "gn", "in"])
def test_every_parameter_gets_a_gradient(arch, norm):
    """No dead layers: each weight influences the output (and in-place activations are safe)."""
    cfg = bc_cfg(arch, [4, 8, 12] if norm != "none" else SMALL)
    cfg.MODEL.NORM_MODE = norm
    cfg.MODEL.PARTIAL_CONV = arch == "rsunet"
    model = build_model(cfg)
    model(torch.rand(2, 1, 3, 16, 16)).square().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_rsunet_decoders_are_separate():
    model = RSUNet(1, 2, SMALL, [1, 1])
    model(torch.rand(1, 1, 2, 16, 16))[:, 0].sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in model.decoders[1].parameters())
    assert all(p.grad is not None for p in model.decoders[0].parameters())


def test_build_model_errors():
    cfg = bc_cfg("unet_3d", SMALL)
    with pytest.raises(ValueError, match="rsunet, unet_residual_3d"):
        build_model(cfg)
    cfg = bc_cfg("unet_residual_3d", SMALL)
    cfg.MODEL.PARTIAL_CONV = True
    with pytest.raises(ValueError, match="PARTIAL_CONV"):
        build_model(cfg)
    cfg = bc_cfg("rsunet", SMALL)
    cfg.MODEL.NORM_MODE = "layer"
    with pytest.raises(ValueError, match="NORM_MODE"):
        build_model(cfg)
    with pytest.raises(ValueError, match="sum to MODEL.OUT_PLANES"):
        RSUNet(1, 3, SMALL, [1, 1])


def test_conv_z_1_is_a_2d_network_on_each_slice():
    """MODEL.CONV_Z 1: every slice's output depends on that slice alone (eval mode: BN statistics fixed)."""
    cfg = bc_cfg("unet_residual_3d", SMALL)
    cfg.MODEL.CONV_Z, cfg.MODEL.NORM_MODE = 1, "bn"
    model = build_model(cfg).eval()
    assert all(m.kernel_size[0] == 1 for m in model.modules() if isinstance(m, torch.nn.Conv3d))
    x = torch.rand(1, 1, 4, 32, 32)
    with torch.no_grad():
        whole = model(x)
        alone = torch.cat([model(x[:, :, z:z + 1]) for z in range(4)], 2)
        changed = model(torch.cat([x[:, :, :2], torch.rand(1, 1, 2, 32, 32)], 2))
    torch.testing.assert_close(whole, alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(changed[:, :, :2], whole[:, :, :2], rtol=1e-5, atol=1e-5)
    assert n_params(model) < n_params(build_model(bc_cfg("unet_residual_3d", SMALL)))
    # the 3D default mixes slices
    model3 = build_model(bc_cfg("unet_residual_3d", SMALL)).eval()
    with torch.no_grad():
        assert not torch.allclose(model3(x)[:, :, 0], model3(x[:, :, :1])[:, :, 0], atol=1e-4)
    cfg.MODEL.CONV_Z = 2
    with pytest.raises(ValueError, match="MODEL.CONV_Z"):
        build_model(cfg)


def test_pad_modes_change_only_the_border():
    x = torch.rand(1, 1, 3, 32, 32)
    outs = {}
    for mode in ("rep", "zeros"):
        torch.manual_seed(0)
        outs[mode] = UNetResidual3D(1, 1, [4, 8, 12], pad_mode=mode)(x)
    assert not torch.allclose(outs["rep"], outs["zeros"])
    assert outs["rep"].shape == outs["zeros"].shape == (1, 1, 3, 32, 32)


@pytest.mark.parametrize("z_last", [False, True])
def test_partial_conv_matches_mask_oracle(monkeypatch, z_last):
    """The predecessor's PartialConv3d with an all-ones mask, computed with full mask tensors."""
    monkeypatch.setattr(blocks, "Z_LAST_ON_CPU", z_last)
    conv = blocks.PartialConv3d(3, 40, 3, padding=1)
    x = torch.randn(1, 3, 4, 16, 24)
    raw = F.conv3d(x, conv.weight, None, padding=1)
    taps = F.conv3d(torch.ones_like(x), torch.ones(40, 3, 3, 3, 3), padding=1)
    expected = raw * (3 * 27) / taps * taps.clamp(0, 1) + conv.bias.view(1, -1, 1, 1, 1)
    assert torch.allclose(conv(x), expected, atol=1e-5)
    ratio = conv.border_ratio((4, 16, 24), x.device, x.dtype)
    assert ratio.shape == (1, 1, 4, 16, 24) and ratio.max() == 3.375 and ratio[0, 0, 1, 5, 5] == 1


def test_bilinear_up_matches_fixed_transposed_conv():
    x = torch.randn(2, 3, 2, 5, 7)
    k = torch.tensor([0.25, 0.75, 0.75, 0.25])
    w = (k[:, None] * k[None, :]).view(1, 1, 1, 4, 4).repeat(3, 1, 1, 1, 1)
    expected = F.conv_transpose3d(x, w, stride=(1, 2, 2), padding=(0, 1, 1), groups=3)
    assert torch.allclose(blocks.bilinear_up(x), expected, atol=1e-6)


def test_upsample_mod_equals_upsampling_first():
    mod = UpsampleMod(6, 4, "none", "elu")
    x, skip = torch.randn(1, 6, 2, 4, 4), torch.randn(1, 4, 2, 8, 8)
    expected = F.elu(mod.conv(blocks.bilinear_up(x)) + skip)
    assert torch.allclose(mod(x, skip), expected, atol=1e-5)


@pytest.mark.parametrize("kernel, stride, pad_mode, z_last", [
    (3, 1, "replicate", True), (3, 1, "zeros", True), ((1, 3, 3), (1, 2, 2), "replicate", True),
    (1, 1, "zeros", True), ((1, 5, 5), 1, "zeros", False)])  # PyTorch already uses oneDNN for 5x5
def test_z_last_conv_equals_stock_conv(monkeypatch, kernel, stride, pad_mode, z_last):
    monkeypatch.setattr(blocks, "Z_LAST_ON_CPU", True)
    conv = blocks.Conv3d(24, 8, kernel, stride=stride, padding=tuple(k // 2 for k in blocks._triple(kernel)),
                         padding_mode=pad_mode)
    x = torch.randn(1, 24, 3, 32, 32, requires_grad=True)
    assert blocks._z_last_helps(x, conv.weight, 1) == z_last
    out = conv(x)
    stock = torch.nn.Conv3d._conv_forward(conv, x, conv.weight, conv.bias)
    assert out.shape == stock.shape and torch.allclose(out, stock, atol=1e-5)
    (g1,) = torch.autograd.grad(out.square().sum(), x)
    (g2,) = torch.autograd.grad(stock.square().sum(), x)
    assert torch.allclose(g1, g2, atol=1e-4)
