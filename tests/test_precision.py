"""bfloat16 autocast on the CPU: chosen from the CPU's features, same decisions as float32."""
import numpy as np
import pytest
import torch

from connectomics.utils.precision import autocast_dtype, cpu_has_bf16, describe


def test_the_type_follows_the_device_the_cpu_features_and_the_setting():
    amx, avx2 = {"avx2", "amx_bf16", "amx_tile"}, {"avx2", "fma"}
    assert cpu_has_bf16(amx) and cpu_has_bf16({"avx512_bf16"}) and not cpu_has_bf16(avx2)
    assert autocast_dtype("cpu", cpu_bf16="auto", flags=amx) == torch.bfloat16
    assert autocast_dtype("cpu", cpu_bf16="auto", flags=avx2) is None
    assert autocast_dtype("cpu", cpu_bf16="on", flags=avx2) == torch.bfloat16
    assert autocast_dtype("cpu", cpu_bf16="off", flags=amx) is None
    assert autocast_dtype("cuda", amp=True, cpu_bf16="on") == torch.float16
    assert autocast_dtype("cuda", amp=False) is None
    assert "neither AMX-BF16 nor AVX512-BF16" in describe("cpu", None, "auto")
    with pytest.raises(ValueError, match="'fast'"):
        autocast_dtype("cpu", cpu_bf16="fast")


def test_a_bad_mode_in_the_config_names_the_key():
    from connectomics.config import ConfigError, load_cfg

    with pytest.raises(ConfigError, match="SYSTEM.CPU_BF16"):
        load_cfg(None, ["SYSTEM.CPU_BF16", "yes"])


def _toy_model_and_volume():
    """A small residual U-Net trained 40 steps to find bright blobs, and a test volume of them."""
    from connectomics.model.unet_residual import UNetResidual3D as UNet3D

    rng = np.random.default_rng(0)

    def blobs(shape):
        zz, yy, xx = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
        label = np.zeros(shape, bool)
        for _ in range(6):
            c = rng.uniform((0, 4, 4), np.array(shape) - (0, 4, 4))
            label |= ((zz - c[0]) / 3) ** 2 + ((yy - c[1]) / 6) ** 2 + ((xx - c[2]) / 6) ** 2 < 1
        image = 0.3 + 0.4 * label + rng.normal(0, 0.08, shape)
        return image.astype(np.float32).clip(0, 1), label.astype(np.float32)

    torch.manual_seed(0)
    model = UNet3D(1, 1, filters=[4, 8, 12], norm="bn")
    optimizer = torch.optim.Adam(model.parameters(), 5e-3)
    for _ in range(40):
        image, label = blobs((8, 32, 32))
        logits = model(torch.from_numpy(image)[None, None])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(label)[None, None])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), blobs((8, 48, 48))


def test_bfloat16_and_float32_give_the_same_decisions_on_a_toy_case():
    """Tolerance: probabilities within 0.03 of float32's; the foreground decision (> 0.5) is the same
    wherever float32's probability is more than 0.03 from the threshold, and differs on < 0.5 % of all voxels."""
    from connectomics.inference.predictor import Predictor, predict_volume

    model, (image, label) = _toy_model_and_volume()
    maps = {}
    for mode in ("off", "on"):
        predictor = Predictor(model, window=(8, 32, 32), stride=(8, 16, 16), pad=(0, 8, 8), batch_size=2,
                              output_act="sigmoid", cpu_bf16=mode)
        assert predictor.dtype == (torch.bfloat16 if mode == "on" else None)
        maps[mode] = predict_volume(predictor, image)[0].astype(np.float32) / 255
    assert predictor.settings()["autocast"] == "bfloat16, input convolution float32"
    f32, b16 = maps["off"], maps["on"]
    assert ((f32 > 0.5) == (label > 0)).mean() > 0.95  # the toy model learned the task
    assert 0 < np.abs(f32 - b16).max() <= 0.03  # bfloat16 did run (the maps differ), within the tolerance
    sure = np.abs(f32 - 0.5) > 0.03
    assert np.array_equal((f32 > 0.5)[sure], (b16 > 0.5)[sure])
    assert ((f32 > 0.5) != (b16 > 0.5)).mean() < 0.005


def test_a_training_step_under_bfloat16_keeps_float32_weights():
    from connectomics.engine.trainer import Trainer
    from connectomics.model.unet_residual import UNetResidual3D as UNet3D

    torch.manual_seed(0)
    model = UNet3D(1, 1, filters=[4, 8, 12])
    optimizer = torch.optim.SGD(model.parameters(), 0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
    image = torch.rand(2, 1, 4, 16, 16)
    batches = iter([(image, [(image > 0.5).float()], [None])] * 2)

    def criterion(logits, targets, weights):
        assert logits.dtype == torch.float32
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets[0])
        return loss, {"bce": loss.item()}

    computed = []
    model.register_forward_hook(lambda module, args, out: computed.append(out.dtype))
    before = [p.detach().clone() for p in model.parameters()]
    Trainer(model, criterion, optimizer, scheduler, batches, 0, 2, torch.device("cpu"), dtype=torch.bfloat16,
            progress=False).train()
    assert computed == [torch.bfloat16, torch.bfloat16]  # the forward ran in bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_under_bfloat16_the_input_convolution_runs_in_float32_and_is_restored():
    from connectomics.inference.predictor import Predictor, predict_volume
    from connectomics.model.unet_residual import UNetResidual3D as UNet3D

    torch.manual_seed(0)
    model = UNet3D(1, 1, filters=[4, 8, 12]).eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    seen = {}
    for name, conv in (("input", convs[0]), ("next", convs[1])):
        conv.register_forward_hook(lambda module, args, out, name=name: seen.update({name: out.dtype}) or None)
    predictor = Predictor(model, window=(4, 16, 16), stride=(4, 16, 16), pad=(0, 0, 0), batch_size=1, cpu_bf16="on")
    predict_volume(predictor, np.random.default_rng(0).random((4, 16, 16), dtype=np.float32))
    assert seen == {"input": torch.float32, "next": torch.bfloat16}
    assert "forward" not in vars(convs[0])  # the model is as it was after inference
