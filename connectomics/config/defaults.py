"""The one config schema: every key, its default and what it means.

YAML files only override these keys; an unknown key is an error. Keys keep the
names of the MitoEM 2021 / PyTorch Connectomics v0.1 configs so that published
settings carry over. Paths are relative to ``SYSTEM.ROOT_DIR`` (see
``connectomics.config.paths``); ``$VAR`` / ``${VAR}`` are expanded.
"""
from yacs.config import CfgNode as CN

_C = CN()

# ---------------------------------------------------------------------------- SYSTEM
_C.SYSTEM = CN()
_C.SYSTEM.NUM_GPUS = 1  # GPUs used for training and inference (0 or no CUDA: CPU)
_C.SYSTEM.NUM_CPUS = 2  # data-loader worker processes (0: load in the main process)
_C.SYSTEM.ROOT_DIR = ""  # root for relative paths; "" = the current working directory
_C.SYSTEM.SEED = 0  # seed of every RNG (model init, sampling, augmentation)
_C.SYSTEM.DEVICE = "auto"  # "auto" (cuda if available), "cpu" or "cuda"
_C.SYSTEM.INFER_AFTER_TRAIN = False  # after training, run inference + post-processing + evaluation
_C.SYSTEM.NUM_THREADS = 0  # torch intra-op threads (0: torch's default)
_C.SYSTEM.CPU_BF16 = ""  # CPU bfloat16 autocast: "" = training float32, inference bfloat16 where the CPU has AMX-BF16
                         # or AVX512-BF16; "auto" = both stages where the CPU has it (float32 elsewhere; the log says
                         # which), "on" (emulated where the CPU lacks it: slow), "off" (float32 everywhere: the same
                         # numbers on every CPU); configs/Finetune's cpu profile sets auto
_C.SYSTEM.SCHEDULER = ""  # blockwise Dask run: "" = off (one process), "local" = a local cluster, "inprocess", or tcp://host:port

# ---------------------------------------------------------------------------- MODEL
_C.MODEL = CN()
_C.MODEL.ARCHITECTURE = "unet_residual_3d"  # registry name: rsunet | unet_residual_3d
_C.MODEL.FILTERS = [28, 36, 48, 64, 80]  # channels per level (both architectures honour it)
_C.MODEL.TARGET_OPT = ["0"]  # targets: '0' foreground, '4-S-B' instance contour (S half-width, B background)
_C.MODEL.WEIGHT_OPT = [["1"]]  # per target, weight codes: '0', '1', '2-G', '3-G' (data/targets.py WEIGHT_CODES)
_C.MODEL.LOSS_OPTION = [["WeightedBCE"]]  # per target, loss names: WeightedBCE | DiceLoss
_C.MODEL.LOSS_WEIGHT = [[1.0]]  # per target, per loss multiplier (applied once)
_C.MODEL.IN_PLANES = 1  # input channels
_C.MODEL.OUT_PLANES = 1  # output channels (sum of the targets' channels)
_C.MODEL.PAD_MODE = "rep"  # conv padding of unet_residual_3d: rep | zeros | circular
_C.MODEL.NORM_MODE = "none"  # normalisation: none | bn | gn | in
_C.MODEL.ACT_MODE = "elu"  # hidden activation: elu | relu | leaky_relu
_C.MODEL.OUTPUT_ACT = "sigmoid"  # activation applied to the logits at inference: sigmoid | none
_C.MODEL.PARTIAL_CONV = False  # rsunet: partial-convolution input block (border-renormalised)
_C.MODEL.EMBEDDING = 1  # unet_residual_3d: use the (1,5,5) embedding convs
_C.MODEL.CONV_Z = 3  # unet_residual_3d: z extent of the residual blocks' convs (1: a 2D U-Net on each slice)
_C.MODEL.HEAD_DEPTH = 1  # kept for config compatibility (only read when EMBEDDING=0)
_C.MODEL.INPUT_SIZE = [8, 256, 256]  # training window (z, y, x); y and x divisible by 16
_C.MODEL.OUTPUT_SIZE = []  # label window; [] or equal to INPUT_SIZE (same-size networks)
_C.MODEL.REGU_OPT = []  # regularisers: BinaryReg
_C.MODEL.REGU_WEIGHT = []  # one weight per regulariser
_C.MODEL.FINETUNE = ""  # kept for config compatibility; unused
_C.MODEL.EXACT = True  # loading a checkpoint: every key and shape must match
_C.MODEL.SIZE_MATCH = True  # kept for config compatibility; unused
_C.MODEL.PRE_MODEL = ""  # initialise the weights from this checkpoint (no optimizer state)
_C.MODEL.PRE_MODEL_LAYER = [""]  # kept for config compatibility; unused
_C.MODEL.PRE_MODEL_ITER = 0  # iteration to start counting from when PRE_MODEL is set
_C.MODEL.PRE_MODEL_LAYER_SELECT = [-1]  # kept for config compatibility; unused

# ---------------------------------------------------------------------------- DATASET
_C.DATASET = CN()
_C.DATASET.DATA_SCALE = [1.0, 1.0, 1.0]  # zoom of the training volumes (z, y, x)
_C.DATASET.SCALE_FACTOR = [2, 3, 3]  # kept for config compatibility; unused
_C.DATASET.USE_LABEL_SMOOTH = False  # smooth the binary targets (0 -> eps, 1 -> 1-eps)
_C.DATASET.LABEL_SMOOTH = 0.1  # eps of the label smoothing
_C.DATASET.IMAGE_NAME = ""  # training image(s): file.h5[:key], .tif or .json; several joined by '@'
_C.DATASET.LABEL_NAME = ""  # training label(s), one per image, joined by '@'
_C.DATASET.VALID_MASK_NAME = ""  # optional masks of labelled voxels, one per image, joined by '@'
_C.DATASET.VAL_IMAGE_NAME = ""  # validation image for training-time AP-75 ("" = no validation)
_C.DATASET.VAL_LABEL_NAME = ""  # validation ground-truth instances
_C.DATASET.INPUT_PATH = ""  # folder prefix of IMAGE_NAME / LABEL_NAME / VAL_* (joined as paths)
_C.DATASET.INFERENCE_PATH = ""  # kept for config compatibility; unused
_C.DATASET.VOXEL_SIZE = []  # (z, y, x) nm, e.g. [30, 8, 8] (MitoEM); [] = as the input files record it
_C.DATASET.VOXEL_SIZE_OVERRIDE = False  # True: VOXEL_SIZE wins over a file that records another one
_C.DATASET.OUTPUT_PATH = "outputs/train"  # checkpoints, logs, tensorboard, merged config
_C.DATASET.DO_2D = False  # sample 2D windows (z = 1)
_C.DATASET.PAD_SIZE = [2, 64, 64]  # mirror padding of the training volumes per side (z, y, x)
_C.DATASET.LABEL_EROSION = 0  # half-width of the 2D border-widening window (0 = off)
_C.DATASET.LABEL_BINARY = False  # labels stored as 0/255 masks: divide by 255
_C.DATASET.LABEL_MAG = 0  # kept for config compatibility; unused
_C.DATASET.DO_CHUNK_TITLE = 0  # 1: read JSON tile descriptors chunk by chunk (sic: TITLE)
_C.DATASET.DATA_CHUNK_NUM = [1, 1, 1]  # chunks per axis (z, y, x) in tile mode
_C.DATASET.DATA_CHUNK_NUM_IND = []  # subset of chunk ids to use (default all)
_C.DATASET.DATA_CHUNK_STRIDE = True  # chunks overlap by 50%
_C.DATASET.DATA_CHUNK_ITER = 1000  # training iterations per loaded chunk
_C.DATASET.DATA_INVALID_THRES = [0.0, 0]  # [max invalid-voxel fraction, max trials] with VALID_MASK_NAME
_C.DATASET.PRE_LOAD_DATA = [None, None, None]  # kept for config compatibility; unused
_C.DATASET.REJECT_SAMPLING = CN()
_C.DATASET.REJECT_SAMPLING.SIZE_THRES = -1  # foreground voxels a sample needs (-1 = off)
_C.DATASET.REJECT_SAMPLING.AFTER_AUG = False  # judge the sample after augmentation
_C.DATASET.REJECT_SAMPLING.P = 0.95  # probability of rejecting a sample below SIZE_THRES
_C.DATASET.SYNTHETIC = CN()
_C.DATASET.SYNTHETIC.ENABLED = False  # generate missing image/label files as synthetic EM
_C.DATASET.SYNTHETIC.SHAPE = [48, 192, 192]  # (z, y, x) of each generated volume
_C.DATASET.SYNTHETIC.SEED = 0  # train uses SEED, validation SEED+1, inference SEED+2
_C.DATASET.SYNTHETIC.MYELIN = 0  # myelinated axons per volume: dark rings / bands that are background (hard negatives)
_C.DATASET.SYNTHETIC.MYELIN_SHEATH = [0.08, 0.2]  # grey range of their sheaths (fractions; [0.15, 0.4] overlaps mitochondria)
_C.DATASET.SYNTHETIC.MYELIN_RADIUS = [8.0, 22.0]  # outer y/x radius range of the axons (voxels)
_C.DATASET.SYNTHETIC.DENSE_BODIES = 0  # near-black homogeneous blobs per volume (lysosomes, lipid droplets): background

# ---------------------------------------------------------------------------- AUGMENTOR
_C.AUGMENTOR = CN()
_C.AUGMENTOR.SMOOTH = True  # smooth label edges after augmentation
_C.AUGMENTOR.ROTATE = CN({"ENABLED": True, "P": 0.5})  # rotation by a random angle in-plane
_C.AUGMENTOR.RESCALE = CN({"ENABLED": True, "P": 0.5})  # in-plane rescale by U(0.8, 1.2)
_C.AUGMENTOR.FLIP = CN({"ENABLED": True, "P": 1.0, "DO_ZTRANS": 0})  # flips and y-x transpose
_C.AUGMENTOR.ELASTIC = CN({"ENABLED": True, "P": 0.75, "ALPHA": 16.0, "SIGMA": 4.0})  # elastic warp
_C.AUGMENTOR.GRAYSCALE = CN({"ENABLED": True, "P": 0.75})  # contrast, brightness, gamma
_C.AUGMENTOR.MISSINGPARTS = CN(
    {"ENABLED": True, "P": 0.9, "SLICE_P": 0.9, "HALF_WIDTH": 40}
)  # a thick band of missing data: SLICE_P per-slice hit probability, HALF_WIDTH band half-width (px)
_C.AUGMENTOR.MISSINGSECTION = CN({"ENABLED": True, "P": 0.5, "NUM_SECTION": 2})  # dropped slices
_C.AUGMENTOR.MISALIGNMENT = CN(
    {"ENABLED": True, "P": 0.5, "DISPLACEMENT": 16, "ROTATE_RATIO": 0.5}
)  # section misalignment
_C.AUGMENTOR.MOTIONBLUR = CN(
    {"ENABLED": True, "P": 0.5, "SECTIONS": 2, "KERNEL_SIZE": 11}
)  # motion blur of a few slices
_C.AUGMENTOR.CUTBLUR = CN(
    {
        "ENABLED": True,
        "P": 0.5,
        "LENGTH_RATIO": 0.4,
        "DOWN_RATIO_MIN": 2.0,
        "DOWN_RATIO_MAX": 8.0,
        "DOWNSAMPLE_Z": False,
    }
)  # a low-resolution cuboid
_C.AUGMENTOR.CUTNOISE = CN(
    {"ENABLED": True, "P": 0.75, "LENGTH_RATIO": 0.4, "SCALE": 0.3}
)  # a noisy cuboid

# ---------------------------------------------------------------------------- SOLVER
_C.SOLVER = CN()
_C.SOLVER.NAME = "Adam"  # optimizer: Adam | AdamW | SGD
_C.SOLVER.LR_SCHEDULER_NAME = "MultiStepLR"  # MultiStepLR | WarmupMultiStepLR | WarmupCosineLR
_C.SOLVER.ITERATION_STEP = 1  # gradient accumulation: optimizer step every N iterations
_C.SOLVER.ITERATION_SAVE = 5000  # checkpoint every N iterations
_C.SOLVER.ITERATION_TOTAL = 40000  # total training iterations (ignored when TIME_BUDGET is set)
_C.SOLVER.TIME_BUDGET = 0.0  # minutes for the whole command (training, inference after it): the iterations fit it (0: off)
_C.SOLVER.ITERATION_VAL = 5000  # training-time validation every N iterations (needs VAL_IMAGE_NAME)
_C.SOLVER.ITERATION_RESTART = False  # --checkpoint gives weights only (new optimizer, iteration 0)
_C.SOLVER.BASE_LR = 0.001  # learning rate
_C.SOLVER.BIAS_LR_FACTOR = 1.0  # learning-rate multiplier of biases
_C.SOLVER.WEIGHT_DECAY_BIAS = 0.0  # weight decay of biases
_C.SOLVER.MOMENTUM = 0.9  # SGD momentum
_C.SOLVER.BETAS = [0.9, 0.999]  # Adam / AdamW betas
_C.SOLVER.WEIGHT_DECAY = 1e-4  # weight decay of weights
_C.SOLVER.WEIGHT_DECAY_NORM = 0.0  # weight decay of normalisation layers
_C.SOLVER.GAMMA = 0.1  # learning-rate decay factor at each step
_C.SOLVER.STEPS = (30000, 35000)  # decay milestones (iterations)
_C.SOLVER.WARMUP_FACTOR = 1.0 / 1000  # learning-rate factor at iteration 0 of the warmup
_C.SOLVER.WARMUP_ITERS = 1000  # warmup length (iterations)
_C.SOLVER.WARMUP_METHOD = "linear"  # linear | constant
_C.SOLVER.SAMPLES_PER_BATCH = 16  # training batch size (total over all GPUs)
_C.SOLVER.AMP = False  # mixed precision on CUDA
_C.SOLVER.CLIP_GRADIENTS = CN()
_C.SOLVER.CLIP_GRADIENTS.ENABLED = False  # clip gradients before the optimizer step
_C.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"  # value | norm
_C.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 1.0  # the bound
_C.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0  # p of the norm when CLIP_TYPE is norm

# ---------------------------------------------------------------------------- MONITOR
_C.MONITOR = CN()
_C.MONITOR.LOG_OPT = [1, 1, 1]  # [log to console (0: warnings/errors only), tensorboard, log.txt]
_C.MONITOR.VIS_OPT = [1, 8]  # [write tensorboard image montages (0/1), slices per montage]
_C.MONITOR.ITERATION_NUM = [10, 50]  # [log the loss every N, write montages every M iterations]

# ---------------------------------------------------------------------------- INFERENCE
_C.INFERENCE = CN()
_C.INFERENCE.INPUT_SIZE = []  # sliding window (z, y, x); [] = MODEL.INPUT_SIZE
_C.INFERENCE.OUTPUT_SIZE = []  # must equal INPUT_SIZE; [] = MODEL.OUTPUT_SIZE
_C.INFERENCE.INPUT_PATH = ""  # folder prefix of INFERENCE.IMAGE_NAME ("" = DATASET.INPUT_PATH)
_C.INFERENCE.IMAGE_NAME = ""  # volume(s) to segment: file.h5[:key], .tif or .json, joined by '@'
_C.INFERENCE.OUTPUT_PATH = ""  # folder of probs.h5, instances.h5, reports ("" = DATASET.OUTPUT_PATH/inference)
_C.INFERENCE.OUTPUT_NAME = "probs.h5"  # file name of the uint8 probability maps
_C.INFERENCE.PAD_SIZE = []  # mirror padding per side (z, y, x); [] = DATASET.PAD_SIZE
_C.INFERENCE.STRIDE = [4, 128, 128]  # step between windows (z, y, x)
_C.INFERENCE.BLENDING = "gaussian"  # window blending: gaussian | bump
_C.INFERENCE.AUG_MODE = "mean"  # test-time augmentation merge: mean | min | max
_C.INFERENCE.AUG_NUM = 0  # test-time augmentation variants: 0, 4 or 16
_C.INFERENCE.CHUNK_SIZE = [64, 512, 512]  # output chunk (z, y, x): bounds memory; resumable unit
_C.INFERENCE.AMP = True  # mixed precision on CUDA (ignored on the CPU)
_C.INFERENCE.DO_EVAL = True  # model.eval() (False: train mode, e.g. batch statistics)
_C.INFERENCE.DO_3D = True  # kept for config compatibility; 3D models only
_C.INFERENCE.MODEL_OUTPUT_ID = [None]  # kept for config compatibility; unused
_C.INFERENCE.TEST_NUM = 1  # kept for config compatibility; unused
_C.INFERENCE.TEST_ID = 0  # kept for config compatibility; unused
_C.INFERENCE.SAMPLES_PER_BATCH = 8  # windows per forward pass

# ---------------------------------------------------------------------------- POSTPROCESS
_C.POSTPROCESS = CN()
_C.POSTPROCESS.DECODER = "bc_watershed"  # bc_watershed | bc_connected | binary_watershed | seed_agglomerate | watershed_agglomerate
_C.POSTPROCESS.SEED_THRESHOLD = 0.9  # seeds: foreground > this (fraction of 1; x255 on uint8 maps)
_C.POSTPROCESS.CONTOUR_THRESHOLD = 0.8  # seeds: contour < this
_C.POSTPROCESS.FOREGROUND_THRESHOLD = 0.85  # watershed mask: foreground > this
_C.POSTPROCESS.MIN_SIZE = 128  # instances smaller than this (voxels) are removed
_C.POSTPROCESS.MAX_SECTION = 0.0  # instances whose mean cross-section (voxels / slices spanned) exceeds this
#                                   many pixels are removed; 0: none
_C.POSTPROCESS.MAX_SECTION_FROM_LABELS = 0.0  # > 0: MAX_SECTION = this x the widest mean cross-section among the
#                                               instances of DATASET.LABEL_NAME (postprocess/label_prior.py)
_C.POSTPROCESS.SMALL_MODE = "background"  # small instances: background | neighbor
_C.POSTPROCESS.SEED_CONNECTIVITY = 26  # seed components: 26 (the predecessor's skimage label) | 6
_C.POSTPROCESS.CONNECTIVITY = 6  # watershed flood: 6 (the predecessor's skimage watershed) | 26
_C.POSTPROCESS.DILATION = [1, 7, 7]  # bc_connected / seed_agglomerate: growth window (z, y, x), odd sizes
_C.POSTPROCESS.DILATION_MODE = "background"  # background: grow into 0 only, nearest id | grey: predecessor max-filter
_C.POSTPROCESS.MERGE_THRESHOLD = 0.5  # watershed_agglomerate: waterz merge threshold
_C.POSTPROCESS.MERGE_FUNCTION = "mean"  # watershed_agglomerate: mean | quantileNN (NN = 10, 15, ..., 95)
_C.POSTPROCESS.OUTPUT_NAME = "instances.h5"  # file name of the uint32 instance volume
_C.POSTPROCESS.TUNE = CN()  # scripts/tune_postprocess.py: grids searched for the best AP-75
# [] = the decoder's own grid (postprocess/decoders.py: seed 0.6..0.95, contour 0.3..0.9, foreground 0.5..0.9,
# merge 0.2..0.7); the heat map is seed x contour (seed x foreground for binary_watershed), the rest one at a time
_C.POSTPROCESS.TUNE.SEED_THRESHOLDS = []  # heat-map axis 1
_C.POSTPROCESS.TUNE.CONTOUR_THRESHOLDS = []  # heat-map axis 2
_C.POSTPROCESS.TUNE.FOREGROUND_THRESHOLDS = []  # then refined one at a time
_C.POSTPROCESS.TUNE.MERGE_THRESHOLDS = []  # watershed_agglomerate only
_C.POSTPROCESS.TUNE.MAX_EVALS = 80  # decodes at most (the grid is thinned to fit)

# ---------------------------------------------------------------------------- BLOCKWISE
# Used when SYSTEM.SCHEDULER (or --scheduler) is set: inference writes zarr blocks of
# INFERENCE.CHUNK_SIZE, post-processing runs block by block with global instance ids.
_C.BLOCKWISE = CN()
_C.BLOCKWISE.BLOCK_SIZE = [64, 512, 512]  # post-processing block (z, y, x); rounded to the input's zarr chunks
_C.BLOCKWISE.HALO = [8, 64, 64]  # watershed context around each block (z, y, x); dilation needs its radius
_C.BLOCKWISE.WORKERS = 0  # local cluster: worker processes (0: one per core)
_C.BLOCKWISE.THREADS_PER_WORKER = 1  # local cluster: threads (and torch threads) per worker
_C.BLOCKWISE.RETRIES = 2  # a block that raises is retried this many times before the run reports it
_C.BLOCKWISE.WORK_DIR = ""  # intermediate zarr stores and block markers ("" = beside the output)

# ---------------------------------------------------------------------------- MEASURE
_C.MEASURE = CN()
_C.MEASURE.ENABLED = True  # after inference: one row per instance (volume, surface, shape, skeleton ...) + PNG
_C.MEASURE.SKELETON = True  # skeleton length and branches (kimimaro; the slowest measure)
_C.MEASURE.OUTPUT_NAME = "instances_stats.csv"  # beside the instances; the summary PNG takes its name

# ---------------------------------------------------------------------------- EVAL
_C.EVAL = CN()
_C.EVAL.GT_NAME = ""  # ground-truth instances of INFERENCE.IMAGE_NAME ("" = no evaluation)
_C.EVAL.AREA_THRESHOLDS = [5e3, 3e4]  # small / medium / large bin edges (voxels), official -th
_C.EVAL.CRUMB_SIZE = 2000  # GT instances smaller than this are dropped, official -thc
_C.EVAL.CHUNK_SLICES = 100  # slices read at a time, official -cz (bounds memory)
_C.EVAL.OUTPUT_PREFIX = "eval"  # report prefix inside INFERENCE.OUTPUT_PATH
_C.EVAL.SCORE = "size"  # rank predictions by: size (voxel count, as the challenge) | foreground (mean probability)


# keys of the predecessor's configs that nothing reads: accepted so its YAML files load, with one warning each
# when set to another value (their comments above say "kept for config compatibility")
COMPAT_KEYS = ("MODEL.HEAD_DEPTH", "MODEL.FINETUNE", "MODEL.SIZE_MATCH", "MODEL.PRE_MODEL_LAYER",
               "MODEL.PRE_MODEL_LAYER_SELECT", "DATASET.SCALE_FACTOR", "DATASET.INFERENCE_PATH", "DATASET.LABEL_MAG",
               "DATASET.PRE_LOAD_DATA", "INFERENCE.DO_3D", "INFERENCE.MODEL_OUTPUT_ID", "INFERENCE.TEST_NUM",
               "INFERENCE.TEST_ID")


def get_cfg_defaults():
    """A fresh, mutable copy of the defaults."""
    return _C.clone()
