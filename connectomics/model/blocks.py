"""Building blocks shared by the 3D U-Nets.

All tensors are ``(B, C, Z, Y, X)`` float. The networks down-sample only in y and x,
by 2 per level, so every block keeps Z and most keep Y, X.

- :class:`ConvNormAct`: conv -> optional normalisation -> optional activation, "same" padding.
- :class:`PartialConv3d`: a zero-padded conv whose border outputs are rescaled by
  ``taps / in-bounds taps`` (the partial convolution with an all-ones mask), without mask tensors.
- :class:`ResidualConvMod`: ``(1,3,3)`` entry conv, then two 3x3x3 convs with an additive skip.
- :func:`bilinear_up`: the fixed bilinear x2 up-sampling in y, x (zero border).
- :class:`Conv3d`: ``nn.Conv3d`` that stays on PyTorch's fast oneDNN path on the CPU (see
  :func:`conv3d`).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("none", "bn", "gn", "in")
ACTIVATIONS = ("elu", "relu", "leaky_relu")
# config name -> nn.Conv3d padding_mode ('rep' is the MitoEM name of replication padding)
PAD_MODES = {"zeros": "zeros", "rep": "replicate", "replicate": "replicate",
             "reflect": "reflect", "circular": "circular"}


def _choose(kind, name, valid):
    if name not in valid:
        raise ValueError(f"unknown {kind} {name!r}; valid: {', '.join(valid)}")


def make_act(name):
    """An in-place activation module; ``None`` or ``''`` gives the identity."""
    if not name:
        return nn.Identity()
    _choose("activation (MODEL.ACT_MODE)", name, ACTIVATIONS)
    if name == "elu":
        return nn.ELU(inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    return nn.LeakyReLU(0.2, inplace=True)  # the slope of PyTorch Connectomics


def make_norm(name, channels):
    """Normalisation over ``channels``: none | bn | gn | in (affine in every case)."""
    _choose("normalisation (MODEL.NORM_MODE)", name, NORMS)
    if name == "none":
        return nn.Identity()
    if name == "bn":
        return nn.BatchNorm3d(channels)
    if name == "in":
        return nn.InstanceNorm3d(channels, affine=True)
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)  # filters such as 28 or 36
    return nn.GroupNorm(groups, channels)


def _triple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)


# PyTorch runs a float32 CPU conv3d through oneDNN only when B > 1, groups > 1, both in-plane kernel
# sizes > 3 or B * C * size(2) * size(3) > 20480 (ATen ConvParams::use_mkldnn); otherwise through
# an im2col path that is 3-5x slower, e.g. for (1, 28, 8, 64, 64). With Z moved last the same
# test reads B * C * Y * X, so a single thin-z sample computes the same conv on the fast path.
_ONEDNN_MIN_SIZE = 20480
Z_LAST_ON_CPU = True  # switch for benchmarks and tests


def _z_last_helps(x, weight, groups):
    if not (Z_LAST_ON_CPU and x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 5):
        return False
    b, c, z, y, xx = x.shape
    stock = b > 1 or groups > 1 or (weight.shape[-1] > 3 and weight.shape[-2] > 3) or b * c * z * y > _ONEDNN_MIN_SIZE
    return not stock and b * c * y * xx > _ONEDNN_MIN_SIZE


def conv3d(x, weight, bias=None, stride=(1, 1, 1), padding=(0, 0, 0), dilation=(1, 1, 1), groups=1,
           padding_mode="zeros"):
    """``F.conv3d`` with ``padding_mode`` (a ``nn.Conv3d`` mode), on oneDNN when Z-last makes it so.

    ``x`` (B, C, Z, Y, X) -> (B, C_out, Z', Y', X'); the result equals ``nn.Conv3d``'s up to float
    rounding. The Z-last output is a permuted view (strides of a (B, C, Y, X, Z) tensor).
    """
    stride, padding, dilation = _triple(stride), _triple(padding), _triple(dilation)
    z_last = _z_last_helps(x, weight, groups)
    if z_last:  # (z, y, x) -> (y, x, z) for the input, the kernel and every per-axis argument
        x, weight = x.permute(0, 1, 3, 4, 2), weight.permute(0, 1, 3, 4, 2)
        stride, padding, dilation = (tuple(v[1:] + v[:1]) for v in (stride, padding, dilation))
    if padding_mode != "zeros" and any(padding):
        pads = [p for p in reversed(padding) for _ in (0, 1)]  # last axis first, both sides
        x, padding = F.pad(x, pads, mode=padding_mode), (0, 0, 0)
    out = F.conv3d(x, weight, bias, stride, padding, dilation, groups)
    return out.permute(0, 1, 4, 2, 3) if z_last else out


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameters and state-dict keys) computed by :func:`conv3d`."""

    def _conv_forward(self, input, weight, bias):
        if isinstance(self.padding, str):
            return super()._conv_forward(input, weight, bias)
        return conv3d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups,
                      self.padding_mode)


def _axis_ratio(n, kernel, pad, dilation):
    """``kernel / (in-bounds taps)`` at each of ``n`` output positions of a stride-1 conv."""
    taps = [sum(0 <= i - pad + j * dilation < n for j in range(kernel)) for i in range(n)]
    return torch.tensor([kernel / t for t in taps], dtype=torch.float64)


class PartialConv3d(Conv3d):
    """Zero-padded 3D conv with border renormalisation (partial conv with an all-ones mask).

    ``out = conv_no_bias(x) * taps / in_bounds_taps + bias``: the interior is a plain conv, a face
    of a 3x3x3 kernel is scaled by 1.5, an edge by 2.25, a corner by 3.375. The ratio depends only
    on the position, so it is built once per input shape as a ``(1, 1, Z, Y, X)`` tensor (outer
    product of per-axis factors) and cached; no per-channel mask tensors are made. Parameters and
    state-dict keys are those of ``nn.Conv3d``. Stride 1 and zero padding only.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.stride != (1, 1, 1) or self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError("PartialConv3d needs stride 1 and numeric zero padding")
        self._ratio_cache = (None, None)

    def border_ratio(self, spatial, device, dtype):
        """The ``(1, 1, Z, Y, X)`` factor for an input of spatial size ``spatial``."""
        key = (tuple(spatial), device, dtype)
        if self._ratio_cache[0] != key:
            rz, ry, rx = (_axis_ratio(n, k, p, d) for n, k, p, d in
                          zip(spatial, self.kernel_size, self.padding, self.dilation))
            ratio = rz[:, None, None] * ry[None, :, None] * rx[None, None, :]
            self._ratio_cache = (key, ratio[None, None].to(device=device, dtype=dtype))
        return self._ratio_cache[1]

    def forward(self, x):
        out = conv3d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
        ratio = self.border_ratio(x.shape[2:], out.device, out.dtype)
        if self.bias is None:
            return out * ratio
        return torch.addcmul(self.bias.view(1, -1, 1, 1, 1), out, ratio)


class ConvNormAct(nn.Module):
    """``act(norm(conv(x)))`` with "same" padding (``kernel // 2`` per axis).

    ``pad_mode``: zeros | rep | reflect | circular; ``partial``: use :class:`PartialConv3d`
    (zero padding). The conv has a bias only when there is no normalisation.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, norm="none", act="elu",
                 pad_mode="zeros", partial=False):
        super().__init__()
        _choose("padding mode (MODEL.PAD_MODE)", pad_mode, tuple(PAD_MODES))
        kernel_size = _triple(kernel_size)
        padding = tuple(k // 2 for k in kernel_size)
        conv_cls = PartialConv3d if partial else Conv3d
        self.conv = conv_cls(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                             bias=norm == "none", padding_mode="zeros" if partial else PAD_MODES[pad_mode])
        self.norm = make_norm(norm, out_channels)
        self.act = make_act(act)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class ResidualConvMod(nn.Module):
    """``x = act(conv133(x)); return act(conv333(act(conv333(x))) + skip(x))``.

    ``skip`` is the identity, or a 1x1x1 conv when ``projection`` (the centre block of
    unet_residual_3d). Used by both RSUNet (ConvMod) and unet_residual_3d (conv + residual block).
    ``conv_z``: z extent of the two inner convs (3; 1 makes the block act on each slice alone).
    """

    def __init__(self, in_channels, out_channels, norm="none", act="elu", pad_mode="zeros",
                 projection=False, conv_z=3):
        super().__init__()
        common = dict(norm=norm, pad_mode=pad_mode)
        self.entry = ConvNormAct(in_channels, out_channels, (1, 3, 3), act=act, **common)
        kernel = (conv_z, 3, 3)
        self.conv1 = ConvNormAct(out_channels, out_channels, kernel, act=act, **common)
        self.conv2 = ConvNormAct(out_channels, out_channels, kernel, act=None, **common)
        self.projector = Conv3d(out_channels, out_channels, 1) if projection else None
        self.act = make_act(act)

    def forward(self, x):
        x = self.entry(x)
        skip = x if self.projector is None else self.projector(x)
        return self.act(self.conv2(self.conv1(x)) + skip)


def _up_axis(x, dim):
    """x2 along ``dim``: out[2i] = .75 x[i] + .25 x[i-1], out[2i+1] = .75 x[i] + .25 x[i+1]."""
    n = x.shape[dim]
    zero = torch.zeros_like(x.narrow(dim, 0, 1))
    prev = torch.cat((zero, x.narrow(dim, 0, n - 1)), dim)
    nxt = torch.cat((x.narrow(dim, 1, n - 1), zero), dim)
    base = 0.75 * x
    return torch.stack((base.add(prev, alpha=0.25), base.add(nxt, alpha=0.25)), dim + 1).flatten(dim, dim + 1)


def bilinear_up(x):
    """Fixed bilinear x2 up-sampling in y and x of ``(B, C, Z, Y, X)`` -> ``(B, C, Z, 2Y, 2X)``.

    Equal to the depthwise ``ConvTranspose3d`` with kernel ``(1,4,4)``, stride ``(1,2,2)``, padding
    ``(0,1,1)`` and weights ``[.25,.75,.75,.25]`` outer ``[.25,.75,.75,.25]`` (Caffe-style bilinear
    up-sampling: the border row sees a zero neighbour), written with shifts because the depthwise
    transposed conv is slow on the CPU. It is linear and per-channel, so it commutes with 1x1x1
    convs without bias.
    """
    return _up_axis(_up_axis(x, 3), 4)


def check_input(x, in_channels, factor, name):
    """Raise ValueError unless ``x`` is ``(B, in_channels, Z, Y, X)`` with Y, X divisible by ``factor``."""
    if x.dim() != 5 or x.shape[1] != in_channels:
        raise ValueError(f"{name} expects input (B, {in_channels}, Z, Y, X) (MODEL.IN_PLANES = "
                         f"{in_channels}), got shape {tuple(x.shape)}")
    if x.shape[3] % factor or x.shape[4] % factor:
        levels = int(math.log2(factor))
        raise ValueError(f"{name}: input y, x = {x.shape[3]}, {x.shape[4]} must be divisible by {factor} "
                         f"({levels} (1,2,2) down-samplings); fix MODEL.INPUT_SIZE / INFERENCE.INPUT_SIZE")


def init_weights(module, method):
    """Initialise every conv: 'kaiming' (normal, zero bias) or 'orthogonal' (bias kept)."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            if method == "kaiming":
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            else:
                nn.init.orthogonal_(m.weight)


def check_filters(filters, name):
    """Return ``filters`` as a list of positive ints (at least two levels) or raise ValueError."""
    filters = [int(f) for f in filters]
    if len(filters) < 2 or min(filters) < 1:
        raise ValueError(f"{name}: MODEL.FILTERS = {filters} needs at least two positive channel counts")
    return filters
