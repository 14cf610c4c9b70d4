"""Config loading, inheritance, overrides and every validation error."""
import os

import pytest

from connectomics.config import ConfigError, check_input_files, get_cfg_defaults, load_cfg, save_cfg
from connectomics.config.loader import merge_opts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, text):
    path.write_text(text)
    return str(path)


def test_defaults_have_comments_and_sections():
    cfg = get_cfg_defaults()
    for section in ("SYSTEM", "MODEL", "DATASET", "SOLVER", "INFERENCE", "AUGMENTOR", "POSTPROCESS", "EVAL"):
        assert section in cfg
    source = open(os.path.join(REPO, "connectomics", "config", "defaults.py")).read()
    for line in source.splitlines():
        if line.startswith("_C.") and " = " in line and "CN(" not in line and line.rstrip().endswith(")") is False:
            assert "#" in line, f"key without a comment: {line}"


@pytest.mark.parametrize("name", ["MitoEM/MitoEM-R-BC.yaml", "MitoEM/MitoEM-H-BC.yaml",
                                  "CDeep3M/CDeep3M-Mito-BC.yaml", "Synthetic/Synthetic-BC.yaml",
                                  "Pretrain/Pretrain-CPU.yaml", "Pretrain/Pretrain-CPU-Myelin.yaml",
                                  "Pretrain/Pretrain-CPU-Hard.yaml"])
def test_shipped_configs_load(name, monkeypatch):
    from connectomics.data.synthetic import config_settings

    monkeypatch.setenv("MITOEM_DIR", "/data/mitoem")
    monkeypatch.setenv("CDEEP3M_DIR", "/data/cdeep3m")
    cfg = load_cfg(os.path.join(REPO, "configs", name))
    assert cfg.MODEL.OUT_PLANES == 2
    assert os.path.isabs(cfg.DATASET.IMAGE_NAME.split(":")[0])
    config_settings(cfg.DATASET.SYNTHETIC)  # its synthetic-data settings are valid


def test_base_inheritance_and_opts(tmp_path):
    base = write(tmp_path / "base.yaml", "SOLVER:\n  BASE_LR: 1e-3\n  ITERATION_TOTAL: 10\n")
    child = write(tmp_path / "child.yaml", "_BASE_: base.yaml\nSOLVER:\n  ITERATION_TOTAL: 20\n")
    cfg = load_cfg(child, ["SOLVER.SAMPLES_PER_BATCH", "3", "MODEL.INPUT_SIZE", "[8, 64, 64]",
                           "INFERENCE.STRIDE", "[4, 32, 32]"])
    assert cfg.SOLVER.BASE_LR == pytest.approx(1e-3)  # from the base, '1e-3' read as a float
    assert cfg.SOLVER.ITERATION_TOTAL == 20
    assert cfg.SOLVER.SAMPLES_PER_BATCH == 3
    assert list(cfg.INFERENCE.INPUT_SIZE) == [8, 64, 64]  # inference window defaults to the model's
    assert cfg.is_frozen()
    assert base


def test_unknown_key_names_closest(tmp_path):
    bad = write(tmp_path / "bad.yaml", "SOLVER:\n  BASE_LRR: 0.1\n")
    with pytest.raises(ConfigError, match=r"SOLVER.BASE_LRR.*did you mean SOLVER.BASE_LR"):
        load_cfg(bad)
    with pytest.raises(ConfigError, match=r"MODEL.INPUT_SZE.*did you mean MODEL.INPUT_SIZE"):
        load_cfg(None, ["MODEL.INPUT_SZE", "[8,64,64]"])
    with pytest.raises(ConfigError, match="unknown config key MODLE"):
        load_cfg(None, ["MODLE.ARCHITECTURE", "rsunet"])


@pytest.mark.parametrize("opts,match", [
    (["INFERENCE.STRIDE", "[4, 300, 128]"], r"INFERENCE.STRIDE.*larger than the window"),
    (["MODEL.INPUT_SIZE", "[8, 100, 128]"], r"MODEL.INPUT_SIZE.*divisible by 16"),
    (["INFERENCE.INPUT_SIZE", "[8, 64, 72]"], r"INFERENCE.INPUT_SIZE.*divisible by 16"),
    (["SOLVER.BASE_LR", "abc"], r"SOLVER.BASE_LR.*expects a float"),
    (["INFERENCE.AUG_NUM", "3"], r"INFERENCE.AUG_NUM = 3: must be 0, 4 or 16"),
    (["MODEL.OUT_PLANES", "3", "MODEL.TARGET_OPT", "['0','4-2-1']", "MODEL.WEIGHT_OPT", "[['1'],['1']]",
      "MODEL.LOSS_OPTION", "[['WeightedBCE'],['WeightedBCE']]", "MODEL.LOSS_WEIGHT", "[[1.0],[1.0]]"],
     r"MODEL.OUT_PLANES = 3.*gives 2 channels"),
    (["MODEL.TARGET_OPT", "['0','4-2-1']"], r"MODEL.WEIGHT_OPT.*one entry per target"),
    (["MODEL.WEIGHT_OPT", "[['2-x']]"], r"MODEL.WEIGHT_OPT.*unknown weight code '2-x'; valid: 0, 1, 2-G"),
    (["POSTPROCESS.SEED_THRESHOLD", "230"], r"POSTPROCESS.SEED_THRESHOLD = 230.0.*fraction"),
    (["SOLVER.ITERATION_TOTAL", "0"], r"SOLVER.ITERATION_TOTAL = 0"),
    (["SOLVER.BASE_LR"], r"KEY VALUE pairs"),
    (["SYSTEM.SCHEDULER", "locl"], r"SYSTEM.SCHEDULER = 'locl'.*'local' or a scheduler address"),
    (["BLOCKWISE.HALO", "[1, -2, 3]"], r"BLOCKWISE.HALO.*non-negative"),
    (["BLOCKWISE.BLOCK_SIZE", "[0, 64, 64]"], r"BLOCKWISE.BLOCK_SIZE.*positive"),
    # names the model needs: refused when the config loads, before any data is generated or read
    (["MODEL.ARCHITECTURE", "unet3d"], r"MODEL.ARCHITECTURE = 'unet3d'.*rsunet, unet_residual_3d"),
    (["MODEL.NORM_MODE", "batch"], r"MODEL.NORM_MODE = 'batch'.*bn"),
    (["MODEL.ACT_MODE", "gelu"], r"MODEL.ACT_MODE = 'gelu'.*elu"),
    (["MODEL.CONV_Z", "2"], r"MODEL.CONV_Z = 2: must be 3 .* or 1"),
    (["MODEL.CONV_Z", "1", "MODEL.ARCHITECTURE", "rsunet"], r"MODEL.CONV_Z = 1: only .*unet_residual_3d"),
    (["MONITOR.ITERATION_NUM", "[0, 50]"], r"MONITOR.ITERATION_NUM = \[0, 50\].*positive"),
    (["SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "nrm"], r"CLIP_TYPE = 'nrm': must be value or norm"),
    (["SOLVER.WARMUP_METHOD", "lin"], r"SOLVER.WARMUP_METHOD = 'lin': must be linear or constant"),
    (["DATASET.VAL_IMAGE_NAME", "val.h5"], r"DATASET.VAL_LABEL_NAME = ''.*ground truth"),
    (["DATASET.DATA_SCALE", "[1, 0.5]"], r"DATASET.DATA_SCALE = \[1, 0.5\].*three positive"),
    (["DATASET.IMAGE_NAME", "a.h5@b.h5", "DATASET.LABEL_NAME", "c.h5@d.h5", "DATASET.VALID_MASK_NAME", "m.h5"],
     r"DATASET.VALID_MASK_NAME.*one mask per image \(2 images\)"),
    (["DATASET.DO_CHUNK_TITLE", "1", "DATASET.DATA_CHUNK_ITER", "0"], r"DATASET.DATA_CHUNK_ITER = 0"),
    (["DATASET.DO_CHUNK_TITLE", "1", "DATASET.DATA_CHUNK_NUM", "[1, 2, 2]", "DATASET.DATA_CHUNK_NUM_IND", "[4]"],
     r"DATASET.DATA_CHUNK_NUM_IND = \[4\].*0..3"),
    (["EVAL.CHUNK_SLICES", "0"], r"EVAL.CHUNK_SLICES = 0.*>= 1"),
    (["DATASET.DO_2D", "True"], r"DATASET.DO_2D = True.*z = 1"),
    (["SOLVER.ITERATION_STEP", "4", "SOLVER.ITERATION_TOTAL", "10"], r"SOLVER.ITERATION_TOTAL = 10.*multiple"),
    (["EVAL.CRUMB_SIZE", "-1"], r"EVAL.CRUMB_SIZE = -1"),
    (["AUGMENTOR.ROTATE.P", "2.0"], r"AUGMENTOR.ROTATE.P = 2.0.*probability"),
    (["AUGMENTOR.CUTNOISE.P", "-0.5"], r"AUGMENTOR.CUTNOISE.P = -0.5"),
])
def test_bad_values_name_key_and_value(opts, match):
    with pytest.raises(ConfigError, match=match):
        load_cfg(None, opts)


def test_contact_weight_codes_are_valid():
    assert load_cfg(None, ["MODEL.WEIGHT_OPT", "[['2-10']]"]).MODEL.WEIGHT_OPT == [["2-10"]]
    assert load_cfg(None, ["MODEL.WEIGHT_OPT", "[['2']]"]).MODEL.WEIGHT_OPT == [["2"]]


def test_outline_weight_codes_are_valid_and_checked_as_the_targets_parse_them():
    assert load_cfg(None, ["MODEL.WEIGHT_OPT", "[['3-4']]"]).MODEL.WEIGHT_OPT == [["3-4"]]
    assert load_cfg(None, ["MODEL.WEIGHT_OPT", "[['3']]"]).MODEL.WEIGHT_OPT == [["3"]]
    for bad in ("3-x", "3-1-2", "3-inf", "4"):
        with pytest.raises(ConfigError, match=f"unknown weight code '{bad}'; valid: 0, 1, 2-G, 3-G"):
            load_cfg(None, ["MODEL.WEIGHT_OPT", f"[['{bad}']]"])


def test_missing_config_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_cfg(str(tmp_path / "nope.yaml"))
    bad = write(tmp_path / "bad.yaml", "SOLVER: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_cfg(bad)


def test_relative_paths_resolve_against_root_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_DATA", str(tmp_path / "data"))
    cfg = load_cfg(None, ["SYSTEM.ROOT_DIR", str(tmp_path), "DATASET.INPUT_PATH", "vols",
                          "DATASET.IMAGE_NAME", "a.h5:raw@b.h5", "DATASET.LABEL_NAME", "$MY_DATA/la.h5@lb.h5",
                          "DATASET.OUTPUT_PATH", "out"])
    assert cfg.DATASET.IMAGE_NAME == f"{tmp_path}/vols/a.h5:raw@{tmp_path}/vols/b.h5"
    assert cfg.DATASET.LABEL_NAME == f"{tmp_path}/data/la.h5@{tmp_path}/vols/lb.h5"
    assert cfg.DATASET.OUTPUT_PATH == f"{tmp_path}/out"


def test_missing_input_files_and_unset_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_VAR", raising=False)
    cfg = load_cfg(None, ["DATASET.IMAGE_NAME", str(tmp_path / "missing.h5"), "DATASET.LABEL_NAME",
                          str(tmp_path / "missing_label.h5")])
    with pytest.raises(FileNotFoundError, match=r"DATASET.IMAGE_NAME: input file not found: .*missing.h5"):
        check_input_files(cfg, "train")
    for key, value in (("INFERENCE.IMAGE_NAME", "${NOT_SET_VAR}/x.h5"), ("INFERENCE.OUTPUT_PATH", "$NOT_SET_VAR/out"),
                       ("DATASET.OUTPUT_PATH", "runs/$NOT_SET_VAR")):
        # at load: an unset variable in an output path would otherwise make a folder literally named '$VAR'
        with pytest.raises(ConfigError, match=f"{key} = .*environment variable \\$NOT_SET_VAR is not set"):
            load_cfg(None, [key, value])


def test_glob_of_image_slices_is_an_input(tmp_path):
    """``INFERENCE.IMAGE_NAME slices/*.png`` (a glob of slices, as the README allows) passes the file check."""
    (tmp_path / "slices").mkdir()
    (tmp_path / "slices" / "z000.png").write_bytes(b"")
    cfg = load_cfg(None, ["INFERENCE.IMAGE_NAME", str(tmp_path / "slices" / "*.png")])
    check_input_files(cfg, "test")
    cfg = load_cfg(None, ["INFERENCE.IMAGE_NAME", str(tmp_path / "slices" / "*.tif")])
    with pytest.raises(FileNotFoundError, match=r"INFERENCE.IMAGE_NAME: no input files match .*\*.tif"):
        check_input_files(cfg, "test")


def test_merged_config_is_saved_and_reloads(tmp_path):
    cfg = load_cfg(None, ["SOLVER.BASE_LR", "0.01"])
    path = save_cfg(cfg, str(tmp_path))
    again = load_cfg(path)
    assert again.SOLVER.BASE_LR == pytest.approx(0.01)
    assert again.dump() == cfg.dump()


def test_string_opt_stays_string():
    cfg = get_cfg_defaults()
    merge_opts(cfg, ["DATASET.IMAGE_NAME", "123"])
    assert cfg.DATASET.IMAGE_NAME == "123"


def test_model_names_checked_at_load_match_the_model_package():
    """validate.MODEL_NAMES (spelled out so that loading a config imports no torch) must not drift."""
    from connectomics.config.validate import MODEL_NAMES
    from connectomics.model.blocks import ACTIVATIONS, NORMS, PAD_MODES
    from connectomics.model.registry import MODEL_REGISTRY

    assert set(MODEL_NAMES["ARCHITECTURE"]) == set(MODEL_REGISTRY)
    assert set(MODEL_NAMES["NORM_MODE"]) == set(NORMS)
    assert set(MODEL_NAMES["ACT_MODE"]) == set(ACTIVATIONS)
    assert set(MODEL_NAMES["PAD_MODE"]) == set(PAD_MODES)


def test_seed_and_flood_connectivity_are_separate_keys_with_the_predecessors_defaults():
    from connectomics.postprocess.build import decoder_params

    params = decoder_params(load_cfg(None))[1]
    assert params["seed_connectivity"] == 26 and params["connectivity"] == 6  # skimage label / watershed defaults
    changed = decoder_params(load_cfg(None, ["POSTPROCESS.SEED_CONNECTIVITY", "6", "POSTPROCESS.CONNECTIVITY", "26"]))
    assert changed[1]["seed_connectivity"] == 6 and changed[1]["connectivity"] == 26
    assert "seed_connectivity" not in decoder_params(load_cfg(None, ["POSTPROCESS.DECODER", "seed_agglomerate"]))[1]
    with pytest.raises(ConfigError, match="POSTPROCESS.SEED_CONNECTIVITY"):
        load_cfg(None, ["POSTPROCESS.SEED_CONNECTIVITY", "18"])


def test_the_finetune_template_loads_with_its_variables_and_knows_the_device(monkeypatch):
    import connectomics.config.loader as loader

    template = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "Finetune", "Finetune-BC.yaml")
    for name in ("TRAIN_IMAGE", "TRAIN_LABEL", "TEST_IMAGE", "TEST_LABEL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match=r"\$TRAIN_IMAGE is not set"):
        load_cfg(template)
    for name in ("TRAIN_IMAGE", "TRAIN_LABEL", "TEST_IMAGE", "TEST_LABEL"):
        monkeypatch.setenv(name, f"/data/{name.lower()}.h5")
    cfg = load_cfg(template, ["SYSTEM.DEVICE", "cpu"])
    assert cfg.DATASET.IMAGE_NAME == "/data/train_image.h5" and cfg.EVAL.GT_NAME == "/data/test_label.h5"
    assert cfg.SOLVER.TIME_BUDGET == 30 and cfg.MODEL.FILTERS == [8, 16, 24, 32, 48] and cfg.SYSTEM.NUM_CPUS == 2
    assert cfg.MODEL.PRE_MODEL.endswith(os.path.join("connectomics", "weights", "bc-cpu-synthetic-myelin.pth"))
    assert cfg.SYSTEM.CPU_BF16 == "auto" and load_cfg(None).SYSTEM.CPU_BF16 == ""  # default: training float32
    assert cfg.POSTPROCESS.MAX_SECTION_FROM_LABELS == 1.5 and load_cfg(None).POSTPROCESS.MAX_SECTION_FROM_LABELS == 0
    monkeypatch.setattr(loader, "device_kind", lambda cfg: "cuda")
    cfg = load_cfg(template)
    assert cfg.MODEL.FILTERS == [28, 36, 48, 64, 80] and cfg.MODEL.INPUT_SIZE == [9, 256, 256]
    assert cfg.MODEL.PRE_MODEL == ""  # the CPU weights do not fit the GPU model
    assert load_cfg(template, ["MODEL.INPUT_SIZE", "[9, 128, 128]"]).MODEL.INPUT_SIZE == [9, 128, 128]  # --opts win


def test_compatibility_keys_warn_once_when_set(caplog):
    """Keys nothing reads are accepted (old YAML files load) but say so, once per process."""
    import re

    from connectomics.config import defaults, loader

    source = open(os.path.join(REPO, "connectomics", "config", "defaults.py")).read()
    commented = re.findall(r"^_C\.([A-Z_.0-9]+) = .*kept for config compatibility", source, re.M)
    assert sorted(commented) == sorted(defaults.COMPAT_KEYS)
    loader._WARNED.discard("MODEL.FINETUNE")
    with caplog.at_level("WARNING"):
        load_cfg(None)
        assert "FINETUNE" not in caplog.text
        load_cfg(None, ["MODEL.FINETUNE", "x.pth"])
        load_cfg(None, ["MODEL.FINETUNE", "y.pth"])
    assert caplog.text.count("MODEL.FINETUNE = 'x.pth' is accepted for compatibility") == 1
    assert "y.pth" not in caplog.text
