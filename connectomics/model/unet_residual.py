"""unet_residual_3d: the residual 3D U-Net of PyTorch Connectomics ("Res-UNet-R").

With ``filters = f`` and ``depth = len(f) - 2``::

    input (B, in, Z, Y, X)
      embed:  conv (1,k,k) in -> f0 -> act -> ResidualConvMod(f0 -> f0)       = e   (k = 5, or 3
      skip0:  conv (1,3,3) f0 -> f0 -> act applied to e                              without embedding)
      down[0]: stride-(1,2,2) conv (1,3,3) f0 -> f0 -> act
      level i = 0..depth-1: ResidualConvMod(f[i] -> f[i+1]) = skip[i] -> stride conv f[i+1] -> act
      center: ResidualConvMod(f[depth] -> f[depth+1], 1x1x1 projection on the residual)
      i = depth-1..0: x = ResidualConvMod(f[i+1])(skip[i] + up[i+1](x))
      x = skip0(e) + up[0](x)
      head:   ResidualConvMod(f0 -> f0) -> conv (1,k,k) f0 -> out (no activation)
    output (B, out, Z, Y, X) logits
    up[i]: conv 1x1x1 f[i+1] -> f[i] -> act -> bilinear x2 in y, x

Compared with the predecessor, the never-used projector convs and the ``middle[1..3]`` convs
(computed and discarded) are gone; the output is the same function of the remaining weights.
All convs use ``pad_mode`` (default replication). Y and X must be divisible by
``2 ** (len(filters) - 1)``; Z is arbitrary. No sigmoid inside.
"""
from torch import nn

from connectomics.model.blocks import (ConvNormAct, ResidualConvMod, bilinear_up, check_filters, check_input,
                                       init_weights)


class UpConv(nn.Module):
    """``bilinear_up(act(norm(conv1x1x1(x))))``: channels f[i+1] -> f[i], y and x doubled."""

    def __init__(self, in_channels, out_channels, **common):
        super().__init__()
        self.conv = ConvNormAct(in_channels, out_channels, 1, **common)

    def forward(self, x):
        return bilinear_up(self.conv(x))


class UNetResidual3D(nn.Module):
    """Residual 3D U-Net with strided in-plane down-sampling and additive skips.

    Args:
        in_channels, out_channels: input / output channels.
        filters: channels per level, e.g. ``[28, 36, 48, 64, 80]`` (the MitoEM model).
        norm: none | bn | gn | in.  act: elu | relu | leaky_relu.
        pad_mode: rep (replication) | zeros | reflect | circular.
        embedding: (1,5,5) input and output convs; False: (1,3,3).
        conv_z: z extent of the residual blocks' inner convs: 3 (3D), or 1: every conv acts on one
            slice, so the network is a 2D U-Net applied to each slice (about 2.5x fewer operations).

    Input ``(B, in_channels, Z, Y, X)`` float (image in [0, 1]); output ``(B, out_channels, Z, Y, X)``
    float logits from one shared decoder.
    """

    architecture = "unet_residual_3d"

    def __init__(self, in_channels=1, out_channels=2, filters=(28, 36, 48, 64, 80), norm="none",
                 act="elu", pad_mode="rep", embedding=True, conv_z=3):
        super().__init__()
        f = check_filters(filters, "unet_residual_3d")
        depth = len(f) - 2
        self.in_channels, self.out_channels = in_channels, out_channels
        self.factor = 2 ** (depth + 1)
        if conv_z not in (1, 3):
            raise ValueError(f"config key MODEL.CONV_Z = {conv_z!r} must be 3 (3D convs) or 1 (per slice)")
        common = dict(norm=norm, act=act, pad_mode=pad_mode)
        res = dict(common, conv_z=conv_z)
        k = (1, 5, 5) if embedding else (1, 3, 3)
        self.embed = nn.Sequential(ConvNormAct(in_channels, f[0], k, **common),
                                   ResidualConvMod(f[0], f[0], **res))
        self.skip0 = ConvNormAct(f[0], f[0], (1, 3, 3), **common)
        self.down = nn.ModuleList(ConvNormAct(f[i], f[i], (1, 3, 3), stride=(1, 2, 2), **common)
                                  for i in range(depth + 1))
        self.encoders = nn.ModuleList(ResidualConvMod(f[i], f[i + 1], **res) for i in range(depth))
        self.center = ResidualConvMod(f[depth], f[depth + 1], projection=True, **res)
        self.up = nn.ModuleList(UpConv(f[i + 1], f[i], **common) for i in range(depth + 1))
        self.decoders = nn.ModuleList(ResidualConvMod(f[i + 1], f[i + 1], **res) for i in range(depth))
        self.head = nn.Sequential(ResidualConvMod(f[0], f[0], **res),
                                  ConvNormAct(f[0], out_channels, k, norm="none", act=None,
                                              pad_mode=pad_mode))
        init_weights(self, "orthogonal")

    def forward(self, x):
        check_input(x, self.in_channels, self.factor, self.architecture)
        x = self.embed(x)
        skip0 = self.skip0(x)
        x = self.down[0](x)
        skips = []
        for encoder, down in zip(self.encoders, self.down[1:]):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.center(x)
        for i in reversed(range(len(self.decoders))):
            x = self.decoders[i](skips[i] + self.up[i + 1](x))
        return self.head(skip0 + self.up[0](x))
