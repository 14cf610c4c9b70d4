"""Post-processing: probability maps -> instances (seeds -> watershed / agglomeration -> cleanup).

``decode(probs, decoder='bc_watershed', **params)`` and the ``DECODERS`` table
(``register_decoder`` extends it) are plain functions on arrays; ``build_decoder(cfg)`` is the config
door; ``postprocess_file(input_spec, output_spec, decode_fn)`` works on files;
``instance_confidence(labels, maps)`` scores each instance by its mean foreground probability.
"""
from connectomics.postprocess.build import build_decoder, decoder_params
from connectomics.postprocess.cleanup import instance_sizes, label_dtype, remove_small_instances
from connectomics.postprocess.confidence import instance_confidence, write_instance_confidence
from connectomics.postprocess.decoders import (bc_connected, bc_watershed, binary_watershed, seed_agglomerate,
                                               watershed_agglomerate)
from connectomics.postprocess.grow import grow_labels
from connectomics.postprocess.io import postprocess_file
from connectomics.postprocess.maps import check_maps, quantize, threshold_level
from connectomics.postprocess.registry import DECODERS, BlockPlan, Decoder, decode, decoder_entry, register_decoder
from connectomics.postprocess.seeds import label_seeds, seed_components, seed_mask
from connectomics.postprocess.watershed import seeded_watershed

__all__ = [
    "BlockPlan", "DECODERS", "Decoder", "bc_connected", "bc_watershed", "binary_watershed", "build_decoder",
    "check_maps", "decode", "decoder_entry", "decoder_params", "grow_labels", "instance_confidence",
    "instance_sizes", "label_dtype", "label_seeds", "postprocess_file", "quantize", "register_decoder",
    "remove_small_instances", "seed_agglomerate", "seed_components", "seed_mask", "seeded_watershed",
    "threshold_level", "watershed_agglomerate", "write_instance_confidence",
]
