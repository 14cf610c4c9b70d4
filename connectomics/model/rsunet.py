"""RSUNet: residual symmetric U-Net with one decoder per target ("Res-UNet-H").

Kisuk Lee's residual symmetric U-Net as used by the MitoEM 2021 winners::

    input (B, in, Z, Y, X)
      embed: conv 3x3x3 -> act -> conv 3x3x3 -> act            (partial convs if partial_conv)
      encoder level d = 0..L-2: ResidualConvMod(f[d-1] -> f[d]) = skip[d] -> max-pool (1,2,2)
      bridge: ResidualConvMod(f[L-2] -> f[L-1])                (at 1 / 2^(L-1) in y, x)
      decoder k (one per target, separate weights), d = L-2..0:
          act(conv1x1x1(bilinear_up(x)) + skip[d]) -> ResidualConvMod(f[d] -> f[d])
          head: conv (1,3,3) f[0] -> channels of target k
    output (B, out, Z, Y, X) logits = concat of the decoders' heads

Skips are additive, convs zero-padded, "same"-size output. Y and X must be divisible by
``2 ** (len(filters) - 1)``; Z is arbitrary. No sigmoid inside.
"""
import torch
import torch.nn.functional as F
from torch import nn

from connectomics.model.blocks import (Conv3d, ConvNormAct, ResidualConvMod, bilinear_up, check_filters, check_input,
                                       conv3d, init_weights, make_act, make_norm)


class UpsampleMod(nn.Module):
    """``act(norm(conv1x1x1(bilinear_up(x))) + skip)``.

    The 1x1x1 conv runs before the up-sampling (on 4x fewer voxels) and its bias is added after:
    both are linear, so this equals up-sampling first.
    """

    def __init__(self, in_channels, out_channels, norm, act):
        super().__init__()
        self.conv = Conv3d(in_channels, out_channels, 1, bias=norm == "none")
        self.norm = make_norm(norm, out_channels)
        self.act = make_act(act)

    def forward(self, x, skip):
        x = bilinear_up(conv3d(x, self.conv.weight))
        if self.conv.bias is not None:
            x = x + self.conv.bias.view(1, -1, 1, 1, 1)
        return self.act(self.norm(x) + skip)


class Decoder(nn.Module):
    """Up-sampling path from the bridge to full resolution, then a (1,3,3) head."""

    def __init__(self, filters, out_channels, norm, act):
        super().__init__()
        levels = range(len(filters) - 1)
        self.ups = nn.ModuleList(UpsampleMod(filters[d + 1], filters[d], norm, act) for d in levels)
        self.convs = nn.ModuleList(ResidualConvMod(filters[d], filters[d], norm, act) for d in levels)
        self.head = Conv3d(filters[0], out_channels, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x, skips):
        for d in reversed(range(len(self.ups))):
            x = self.convs[d](self.ups[d](x, skips[d]))
        return self.head(x)


class RSUNet(nn.Module):
    """Residual symmetric U-Net with separate decoders.

    Args:
        in_channels: input channels.
        out_channels: output channels (sum of ``decoder_channels``).
        filters: channels per level, e.g. ``[16, 32, 48, 64, 80]`` (the MitoEM model).
        decoder_channels: channels emitted by each decoder, e.g. ``[1, 1]`` for separate
            foreground and contour decoders; ``None``: one decoder emitting ``out_channels``.
        norm: none | bn | gn | in.  act: elu | relu | leaky_relu.
        partial_conv: border-renormalised (partial) convs in the input block.

    Input ``(B, in_channels, Z, Y, X)`` float (image in [0, 1]); output ``(B, out_channels, Z, Y, X)``
    float logits, channel order = decoder order.
    """

    architecture = "rsunet"

    def __init__(self, in_channels=1, out_channels=2, filters=(16, 32, 48, 64, 80),
                 decoder_channels=None, norm="none", act="elu", partial_conv=False):
        super().__init__()
        filters = check_filters(filters, "rsunet")
        decoder_channels = [out_channels] if decoder_channels is None else [int(c) for c in decoder_channels]
        if sum(decoder_channels) != out_channels or min(decoder_channels) < 1:
            raise ValueError(f"rsunet: decoder channels {decoder_channels} (one per MODEL.TARGET_OPT) "
                             f"must be positive and sum to MODEL.OUT_PLANES = {out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.factor = 2 ** (len(filters) - 1)
        common = dict(norm=norm, act=act)
        self.embed = nn.Sequential(
            ConvNormAct(in_channels, filters[0], 3, partial=partial_conv, **common),
            ConvNormAct(filters[0], filters[0], 3, partial=partial_conv, **common))
        self.encoders = nn.ModuleList(ResidualConvMod(filters[max(d - 1, 0)], filters[d], **common)
                                      for d in range(len(filters) - 1))
        self.bridge = ResidualConvMod(filters[-2], filters[-1], **common)
        self.decoders = nn.ModuleList(Decoder(filters, c, norm, act) for c in decoder_channels)
        init_weights(self, "kaiming")

    def forward(self, x):
        check_input(x, self.in_channels, self.factor, self.architecture)
        x = self.embed(x)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.max_pool3d(x, (1, 2, 2))
        x = self.bridge(x)
        outs = [decoder(x, skips) for decoder in self.decoders]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
