"""Predictor: blending, rounding, TTA, chunking invariance against a NumPy oracle."""
import itertools
import logging

import numpy as np
import pytest
import torch

from connectomics.geometry import reflect_index
from connectomics.inference import Predictor, build_predictor, predict_volume
from connectomics.inference.blending import blending_weights, finalize_uint8, probability_to_uint8
from connectomics.inference.tiling import axis_padding, window_starts
from connectomics.inference.tta import apply_variant, invert_variant, predict_tta, tta_variants


class RampModel(torch.nn.Module):
    """A fixed random 3x3x3 conv plus a ramp over the window position (so blending matters)."""

    def __init__(self, channels=2, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv3d(1, channels, 3, padding=1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        z, y, x_ = (torch.linspace(-2, 2, n) for n in x.shape[2:])
        ramp = z[:, None, None] + y[None, :, None] - x_[None, None, :]
        return 4 * self.conv(x) + ramp


def _oracle(model, volume, window, stride, pad, blending="gaussian"):
    """Pad the whole volume, run every global window one by one, blend in float64, round."""
    paddings = [axis_padding(n, w, p) for n, w, p in zip(volume.shape, window, pad)]
    index = np.ix_(*[reflect_index(np.arange(-b, n + a), n) for n, (b, a) in zip(volume.shape, paddings)])
    padded = volume[index].astype(np.float32) / 255
    ww = blending_weights(window, blending).astype(np.float64)
    acc = np.zeros((2,) + padded.shape)
    weight = np.zeros(padded.shape)
    starts = [window_starts(n, w, s, p) for n, w, s, p in zip(volume.shape, window, stride, pad)]
    with torch.no_grad():
        for corner in itertools.product(*starts):
            box = tuple(slice(a + b, a + b + w) for a, (b, _), w in zip(corner, paddings, window))
            out = torch.sigmoid(model(torch.from_numpy(padded[box][None, None].copy())))[0].double().numpy()
            acc[(slice(None),) + box] += out * ww
            weight[box] += ww
    crop = tuple(slice(b, b + n) for (b, _), n in zip(paddings, volume.shape))
    return np.clip(np.rint(255 * acc[(slice(None),) + crop] / weight[crop]), 0, 255).astype(np.uint8)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(0).integers(0, 256, (11, 37, 30), dtype=np.uint8)


def test_blending_weights_match_the_formulas():
    g = blending_weights((5, 9, 9), "gaussian")
    assert g.dtype == np.float32 and g.shape == (5, 9, 9)
    assert g[2, 4, 4] == pytest.approx(1 + 1e-4)
    assert g[0, 4, 4] == pytest.approx(1e-4 + np.exp(-1 / (2 * 0.04)))
    b = blending_weights((4, 6, 6), "bump")
    assert b.max() == pytest.approx(1 + 1e-4) and b.min() >= 0.999e-4
    for w in (g, b):
        assert np.allclose(w, w[::-1, ::-1, ::-1]) and np.allclose(w, w.transpose(0, 2, 1))
    with pytest.raises(ValueError, match="unknown blending 'box'"):
        blending_weights((2, 2, 2), "box")


def test_finalize_rounds_instead_of_truncating():
    p = np.array([0, 100.7 / 255, 0.5 / 255, 1.6 / 255, 1.0, 1.2, -0.1], np.float32)
    w = np.full(p.shape, 3.0, np.float32)
    acc = torch.from_numpy((p * w)[None].copy())
    got = finalize_uint8(acc, torch.from_numpy(w)).numpy()[0]
    assert got.tolist() == [0, 101, 0, 2, 255, 255, 0]
    assert np.array_equal(probability_to_uint8(p), got)


def test_tta_variants_are_distinct_and_exactly_invertible():
    x = torch.rand(2, 1, 3, 5, 5)
    assert [len(tta_variants(n)) for n in (0, 4, 16)] == [1, 4, 16]
    variants = tta_variants(16)
    images = [apply_variant(x, v) for v in variants]
    for v, image in zip(variants, images):
        assert torch.equal(invert_variant(image, v), x)
    assert len({tuple(i.flatten().tolist()) for i in images}) == 16
    assert set(tta_variants(4)) <= set(variants)
    assert all(flips in ((), (2,)) for flips, _ in tta_variants(4))


def test_tta_drops_the_transpose_for_non_square_windows(caplog):
    with caplog.at_level(logging.WARNING):
        variants = tta_variants(16, (4, 16, 32))
    assert len(variants) == 8 and not any(t for _, t in variants)
    assert "transpose is impossible" in caplog.text
    with pytest.raises(ValueError, match="AUG_NUM must be one of"):
        tta_variants(8)


def test_tta_of_an_equivariant_model_equals_the_plain_output():
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(1, 2, 3, padding=1)
    with torch.no_grad():  # symmetric under z/y/x flips and y-x transpose -> equivariant conv
        k = conv.weight
        k.copy_(k + k.flip(2) + k.flip(3) + k.flip(4))
        k.copy_(k + k.flip(2, 3, 4))
        k.copy_(k + k.transpose(3, 4))
    x = torch.rand(3, 1, 4, 8, 8)
    with torch.no_grad():
        plain = torch.sigmoid(conv(x))
        for n, mode in itertools.product((4, 16), ("mean", "min", "max")):
            merged = predict_tta(lambda t: torch.sigmoid(conv(t)), x, tta_variants(n), mode)
            assert torch.allclose(merged, plain, atol=1e-6), (n, mode)
        skewed = predict_tta(lambda t: torch.sigmoid(conv(t) + t.cumsum(4)), x, tta_variants(4), "mean")
        assert not torch.allclose(skewed, torch.sigmoid(conv(x) + x.cumsum(4)), atol=1e-3)


def test_tta_with_pointwise_model_gives_identical_volumes(volume):
    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 2, 1)
    kw = dict(window=(4, 16, 16), stride=(2, 8, 8), pad=(1, 4, 4))
    plain = predict_volume(Predictor(model, **kw), volume)
    for n, mode in ((4, "mean"), (16, "max"), (16, "min")):
        assert np.array_equal(predict_volume(Predictor(model, aug_num=n, aug_mode=mode, **kw), volume), plain)


@pytest.mark.parametrize("blending", ["gaussian", "bump"])
def test_predict_volume_matches_the_whole_volume_oracle(volume, blending):
    model = RampModel()
    kw = dict(window=(4, 16, 16), stride=(3, 7, 9), pad=(2, 5, 3))
    got = predict_volume(Predictor(model, blending=blending, batch_size=3, chunk_size=(5, 13, 17), **kw), volume)
    expected = _oracle(model, volume, blending=blending, **kw)
    assert got.shape == (2,) + volume.shape and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_output_does_not_depend_on_chunking_or_batching(volume):
    model = RampModel()
    kw = dict(window=(4, 16, 16), stride=(2, 8, 8), pad=(1, 4, 4))
    reference = predict_volume(Predictor(model, batch_size=4, **kw), volume)  # one chunk
    for chunk_size, batch in (((4, 16, 16), 1), ((5, 13, 17), 3), ((11, 37, 7), 8), ((1, 40, 40), 2)):
        got = predict_volume(Predictor(model, batch_size=batch, **kw), volume, chunk_size=chunk_size)
        assert np.array_equal(got, reference), chunk_size


class BatchSensitiveModel(RampModel):
    """RampModel whose output shifts with the batch size: it stands for CPU kernels that round
    differently for other batch shapes (seen with oneDNN on AVX-512)."""

    def forward(self, x):
        self.calls += 1
        return super().forward(x) + 0.05 * x.shape[0]


def test_every_forward_has_the_batch_shape_so_the_chunking_cannot_change_a_voxel(volume):
    """The last batch of each chunk is padded with zero windows: a window's prediction does not
    depend on how many windows its chunk has (blockwise vs single-process maps, any CPU)."""
    model = BatchSensitiveModel()
    shapes = []
    model.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    kw = dict(window=(4, 16, 16), stride=(2, 8, 8), pad=(1, 4, 4), batch_size=4)
    reference = predict_volume(Predictor(model, **kw), volume)  # one chunk
    for chunk_size in ((4, 16, 16), (5, 13, 17), (11, 37, 7), (1, 40, 40)):
        got = predict_volume(Predictor(model, **kw), volume, chunk_size=chunk_size)
        assert np.array_equal(got, reference), chunk_size
    assert {s[0] for s in shapes} == {4}
    shapes.clear()  # train mode (batch statistics): zero windows would change them, so none are added
    predict_volume(Predictor(model, eval_mode=False, **kw), volume, chunk_size=(5, 13, 17))
    assert min(s[0] for s in shapes) < 4


def test_volume_smaller_than_the_window_is_padded_up():
    small = np.random.default_rng(3).integers(0, 256, (2, 5, 9), dtype=np.uint8)
    model = RampModel()
    kw = dict(window=(4, 16, 16), stride=(2, 8, 8), pad=(1, 2, 2))
    got = predict_volume(Predictor(model, **kw), small)
    assert got.shape == (2, 2, 5, 9)
    assert np.abs(got.astype(int) - _oracle(model, small, **kw)).max() <= 1


def test_float_input_equals_uint8_input(volume):
    model = RampModel()
    kw = dict(window=(4, 16, 16), stride=(4, 16, 16), pad=(0, 0, 0))
    a = predict_volume(Predictor(model, **kw), volume)
    b = predict_volume(Predictor(model, **kw), volume.astype(np.float32) / 255)
    assert np.array_equal(a, b)


def test_float_input_outside_0_1_is_refused(volume):
    """A float image stored as 0..255 must not reach the model unscaled (maps of garbage)."""
    from connectomics.storage import VolumeError

    predictor = Predictor(RampModel(), window=(4, 16, 16), stride=(4, 16, 16), pad=(0, 0, 0))
    with pytest.raises(VolumeError, match=r"must lie in \[0, 1\], found values in \[0, 255\]"):
        predict_volume(predictor, volume.astype(np.float32))
    nan = volume.astype(np.float32) / 255
    nan[3, 4, 5] = np.nan
    with pytest.raises(VolumeError, match="must lie in"):
        predict_volume(predictor, nan)


def test_unsupported_dtype_is_a_volume_error():
    """main.py prints VolumeError without a traceback (connectomics.errors.USER_ERRORS)."""
    from connectomics.errors import USER_ERRORS

    predictor = Predictor(torch.nn.Identity(), (2, 8, 8), (2, 8, 8), (0, 0, 0))
    with pytest.raises(USER_ERRORS, match="got dtype uint16"):
        predict_volume(predictor, np.zeros((2, 8, 8), np.uint16))


def test_model_mode_is_restored_and_eval_used():
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append((self.training, torch.is_inference_mode_enabled()))
            return torch.zeros(x.shape[0], 1, *x.shape[2:])

    model = Spy().train()
    out = predict_volume(Predictor(model, (2, 4, 4), (2, 4, 4), (0, 0, 0)), np.zeros((2, 4, 4), np.uint8))
    assert model.training and seen == [(False, True)]
    assert out.shape == (1, 2, 4, 4) and (out == 128).all()  # sigmoid(0) = 0.5 -> rint(127.5) = 128


def test_time_batch_times_batches_as_inference_runs_them_and_leaves_the_model_as_it_was():
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = torch.nn.Conv3d(1, 2, 1), torch.nn.Conv3d(2, 1, 3, padding=1)
            self.norm = torch.nn.BatchNorm3d(2)

        def forward(self, x):
            seen.append((tuple(x.shape), self.training, torch.is_inference_mode_enabled(),
                         self.conv2.weight.is_contiguous(memory_format=torch.channels_last_3d)))
            return self.conv2(self.norm(self.conv1(x)))

    model = Spy().train()
    stats = model.norm.running_mean.clone()
    predictor = Predictor(model, (2, 4, 4), (2, 4, 4), (0, 0, 0), batch_size=3, aug_num=4, eval_mode=False)
    assert predictor.time_batch(repeats=2) > 0
    # a warm-up batch and two timed ones, each with its 4 test-time variants, in eval mode and the
    # channels-last weight layout inference uses on the CPU (batch statistics untouched)
    assert seen == [((3, 1, 2, 4, 4), False, True, True)] * 12
    assert model.training and torch.equal(model.norm.running_mean, stats)
    assert model.conv2.weight.is_contiguous()  # its layout back


def test_bad_inputs_and_models_give_clear_errors():
    predictor = Predictor(torch.nn.Conv3d(1, 2, (1, 3, 3)), (2, 8, 8), (2, 8, 8), (0, 0, 0))
    with pytest.raises(ValueError, match="same-size network"):
        predict_volume(predictor, np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="uint8 .* or float .*got dtype int32"):
        predict_volume(predictor, np.zeros((2, 8, 8), np.int32))
    with pytest.raises(ValueError, match=r"\(Z, Y, X\) volume, got shape \(8, 8\)"):
        predict_volume(predictor, np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="output activation 'softmax'"):
        Predictor(torch.nn.Identity(), (2, 8, 8), (2, 8, 8), (0, 0, 0), output_act="softmax")
    with pytest.raises(ValueError, match="merge 'median' not supported"):
        Predictor(torch.nn.Identity(), (2, 8, 8), (2, 8, 8), (0, 0, 0), aug_mode="median")
    with pytest.raises(ValueError, match="unknown blending 'box'"):
        Predictor(torch.nn.Identity(), (2, 8, 8), (2, 8, 8), (0, 0, 0), blending="box")
    with pytest.raises(ValueError, match="stride 9 is larger than the window 8"):
        Predictor(torch.nn.Identity(), (2, 8, 8), (2, 9, 8), (0, 0, 0))


def test_build_predictor_reads_the_inference_config():
    from connectomics.config import load_cfg

    cfg = load_cfg(None, ["MODEL.INPUT_SIZE", "[4, 32, 32]", "INFERENCE.STRIDE", "[2, 16, 16]",
                          "INFERENCE.AUG_NUM", "4", "INFERENCE.AUG_MODE", "max", "INFERENCE.BLENDING", "bump",
                          "INFERENCE.SAMPLES_PER_BATCH", "3", "INFERENCE.PAD_SIZE", "[1, 8, 8]"])
    predictor = build_predictor(cfg, torch.nn.Conv3d(1, 1, 1), "cpu")
    from connectomics.utils.precision import cpu_has_bf16

    # the default: bfloat16 inference exactly where the CPU has it (then the settings say so)
    assert predictor.settings() == dict({"window": [4, 32, 32], "stride": [2, 16, 16], "pad": [1, 8, 8],
                                         "blending": "bump", "aug_num": 4, "aug_mode": "max",
                                         "output_act": "sigmoid", "amp": False},
                                        **({"autocast": "bfloat16, input convolution float32"}
                                           if cpu_has_bf16() else {}))
    assert predictor.channels_last  # on the CPU by default
    off = build_predictor(load_cfg(None, ["SYSTEM.CPU_BF16", "off"]), torch.nn.Conv3d(1, 1, 1), "cpu")
    assert "autocast" not in off.settings() and off.dtype is None  # the key that forces float32
    assert predictor.batch_size == 3 and predictor.chunk_size == tuple(cfg.INFERENCE.CHUNK_SIZE)
    assert len(predictor.variants) == 4 and predictor.eval_mode


def test_a_model_returning_its_input_is_not_corrupted_by_the_sigmoid(volume):
    expected = probability_to_uint8(1 / (1 + np.exp(-volume.astype(np.float64) / 255)))[None]
    for aug_num in (0, 16):
        got = predict_volume(Predictor(torch.nn.Identity(), (4, 16, 16), (2, 8, 8), (1, 4, 4), aug_num=aug_num),
                             volume)
        assert np.abs(got.astype(int) - expected).max() <= 1
