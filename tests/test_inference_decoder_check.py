"""run_inference checks POSTPROCESS before any checkpoint is read or block is run."""
import pytest

from connectomics.config import ConfigError, load_cfg
from connectomics.engine.infer import run_inference
from connectomics.errors import USER_ERRORS


def _cfg(tmp_path, *opts):
    # no checkpoint in DATASET.OUTPUT_PATH: reaching the model would raise FileNotFoundError instead
    return load_cfg(None, ["DATASET.OUTPUT_PATH", str(tmp_path / "none"), "INFERENCE.IMAGE_NAME",
                           str(tmp_path / "image.h5"), "INFERENCE.OUTPUT_PATH", str(tmp_path / "out"), *opts])


@pytest.mark.parametrize("scheduler", [None, "inprocess"])
def test_bad_decoder_value_fails_before_inference(tmp_path, scheduler):
    cfg = _cfg(tmp_path, "POSTPROCESS.DECODER", "bc_connected", "POSTPROCESS.DILATION", "[1, 4, 4]")
    with pytest.raises(ConfigError, match=r"POSTPROCESS .*dilation window \[1, 4, 4\]"):
        run_inference(cfg, scheduler=scheduler)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("opts, message", [
    (("POSTPROCESS.DECODER", "watershed_agglomerate"), "no blockwise form"),
    (("POSTPROCESS.SMALL_MODE", "neighbor"), "SMALL_MODE neighbor has no blockwise form"),
])
def test_decoder_without_blockwise_form_fails_before_the_blocks(tmp_path, opts, message):
    cfg = _cfg(tmp_path, *opts)
    with pytest.raises(USER_ERRORS, match=message) as info:
        run_inference(cfg, scheduler="inprocess")
    assert isinstance(info.value, ConfigError)  # main.py prints it without a traceback
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("scheduler, opts, message", [
    (None, ("INFERENCE.OUTPUT_NAME", "probs.tif"), r"INFERENCE.OUTPUT_NAME = 'probs.tif'.*from many workers"),
    (None, ("POSTPROCESS.OUTPUT_NAME", "instances.png"), "POSTPROCESS.OUTPUT_NAME = 'instances.png'"),
    ("inprocess", ("POSTPROCESS.OUTPUT_NAME", "instances.png"), "POSTPROCESS.OUTPUT_NAME = 'instances.png'"),
])
def test_unwritable_output_names_fail_before_inference(tmp_path, scheduler, opts, message):
    cfg = _cfg(tmp_path, *opts)
    with pytest.raises(ConfigError, match=message):
        run_inference(cfg, scheduler=scheduler)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("opts", [("POSTPROCESS.OUTPUT_NAME", "instances.h5:seg"),
                                  ("INFERENCE.OUTPUT_NAME", "probs.zarr", "POSTPROCESS.OUTPUT_NAME", "instances.zarr"),
                                  ("INFERENCE.OUTPUT_NAME", "probs.ome.zarr", "POSTPROCESS.OUTPUT_NAME", "r.ome.zarr"),
                                  ("POSTPROCESS.OUTPUT_NAME", "instances.tif")])
def test_writable_output_names_pass_the_name_check(tmp_path, opts):
    cfg = _cfg(tmp_path, *opts)
    with pytest.raises(FileNotFoundError, match="checkpoint"):  # got past the checks, to the model
        run_inference(cfg)
