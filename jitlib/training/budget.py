"""What training a JiT costs — estimates, not measurements: memory per GPU, FLOPs per image, time per epoch.

Memory on one GPU = training state + activations (all in bytes):

- state: fp32 weights (4 per parameter), fp32 gradients (4), AdamW's two fp32 moments (8), one fp32 copy per EMA
  decay (4 each), the bf16/fp16 copies of the Linear/Conv weights that autocast makes and autograd keeps for the
  backward pass (2), and under DDP with several processes its gradient buckets, a second copy of the gradients (4).
  FSDP2 shards weights, gradients, moments and EMAs over the processes; the autocast copies stay whole.
- activations: the tensors autograd keeps from the forward to the backward pass, counted tensor by tensor for
  jitlib's eager model (:func:`activation_bytes_per_image`), times the images each GPU processes per step.

Not included: transient buffers of the backward pass, the CUDA context and library workspaces, allocator
fragmentation, the data loader. :func:`max_images_per_gpu` leaves a fraction of the memory for them (an assumption).

Compute: a training image costs one forward and one backward pass, the backward about twice the forward, so
3 × forward FLOPs = 6 × forward MACs (:mod:`jitlib.nn.flops`). A GPU with dense peak F FLOP/s running at model-FLOP
utilisation u trains u·F / (6·MACs) images per second. u is an assumption (default 0.4), not a measurement.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from jitlib.diffusion.denoiser import Denoiser
from jitlib.diffusion.sampling import sample
from jitlib.nn.flops import count_params, forward_flops
from jitlib.nn.model import JiT, JiTConfig

GB = 1e9
IMAGENET_TRAIN_IMAGES = 1_281_167  # ImageNet-1k training set (ILSVRC-2012)
ACTIVATION_BYTES = {
    "fp32": 4,
    "bf16": 2,
    "fp16": 2,
}  # bytes per activation element under each training precision
DEFAULT_MFU = 0.4  # assumed model-FLOP utilisation of a well-tuned run
USABLE_FRACTION = 0.9  # share of a GPU's memory the estimate may fill; the rest is for what it leaves out


@dataclass(frozen=True)
class Device:
    """A GPU as the estimates see it: dense tensor-core peak (bf16, or fp16 where bf16 is missing) and nominal memory."""

    name: str
    peak_tflops: float  # dense, without sparsity, in the precision below
    memory_gb: float  # nominal capacity, 10⁹ bytes
    precision: str  # the autocast dtype jitlib picks on it ("auto")

    @property
    def peak_flops(self) -> float:
        """Peak FLOP/s (dense)."""
        return self.peak_tflops * 1e12


# Vendor data sheets: dense tensor-core peaks (the sparse figures are twice these).
DEVICES: dict[str, Device] = {
    "H100": Device("NVIDIA H100 SXM 80GB", 989.0, 80.0, "bf16"),
    "H200": Device("NVIDIA H200 SXM 141GB", 989.0, 141.0, "bf16"),
    "A100": Device("NVIDIA A100 SXM 80GB", 312.0, 80.0, "bf16"),
    "L4": Device("NVIDIA L4 24GB", 121.0, 24.0, "bf16"),
    "T4": Device("NVIDIA T4 16GB", 65.0, 16.0, "fp16"),  # no bf16: fp16 autocast with a GradScaler
}


def get_device(name: str | Device) -> Device:
    """A :data:`DEVICES` entry by its short name ("H100"), or the Device itself."""
    if isinstance(name, Device):
        return name
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; valid: {', '.join(DEVICES)} (or pass a budget.Device)")
    return DEVICES[name]


def _activation_bytes(precision: str) -> int:
    if precision not in ACTIVATION_BYTES:
        raise ValueError(f"precision={precision!r} is not one of {', '.join(ACTIVATION_BYTES)}")
    return ACTIVATION_BYTES[precision]


@functools.lru_cache(maxsize=64)
def parameter_counts(config: JiTConfig) -> tuple[int, int, int]:
    """(all parameters, trainable ones, Linear/Conv weights whose autocast copies autograd keeps), from a meta model.

    The kept copies are all Linear/Conv2d weights but those whose input needs no gradient, so their copies are
    dropped: the time MLP's first layer (sin-cos features of t) and the first patch-embedding map (the pixels).
    (Biases are cast too, but their copies are not needed backwards.)
    """
    with torch.device("meta"):
        model = JiT(config)
    embed = model.x_embedder
    skipped = [model.t_embedder.mlp[0], getattr(embed, "proj1", None) or embed.proj]
    cast = sum(
        m.weight.numel()
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d)) and all(m is not k for k in skipped)
    )
    return count_params(model, trainable_only=False), count_params(model), cast


# ---------------------------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------------------------


def block_activation_bytes(
    config: JiTConfig,
    tokens: int,
    *,
    precision: str = "bf16",
    dropout: bool = False,
    device_type: str = "cuda",
) -> int:
    """Bytes one JiTBlock keeps for the backward pass per image, with n = `tokens` tokens (an estimate).

    n·[8·D + q·D + att·D + 4a·D + 4a·H + 4·(2 + s·h) + m·(D + H)] + 9a·D + 8·D, where a = bytes per activation
    (4 fp32, 2 under bf16/fp16 autocast), D = width, H = SwiGLU width, h = heads, and
    8·D: the two RMSNorm-modulations (``norm_modulate``, whose hand-written backward needs no more) keep the
    normalised x·r in fp32;
    q·D: qk-norm keeps q, k normalised in fp32 (q = 8), plus fp32 copies of q and k under autocast (q = 16);
    att·D: attention keeps q̃, k̃, the qkv output (v is a view of it) and its output, 6a (18 under autocast with
    ``attn_fp32_logits``); a flash-type kernel keeps no n×n matrix, only a log-sum-exp;
    4a·D: the inputs of qkv, proj and w12 and the attention branch's output that its gate multiplies;
    4a·H: SwiGLU keeps w12's output [gate, value] (2H), SiLU(gate) and the product (w3's input);
    4·(2 + s·h): fp32 per-token scalars (each RMSNorm-modulation's rsqrt; per head the attention log-sum-exp and q's
    and k's rsqrt, s = 3, or under autocast, where qk-norm takes autograd's own backward, also their norms, s = 5);
    m·(D + H): dropout masks in the middle blocks of H/G, m = 1 byte on CUDA (bool), a on CPU;
    9a·D + 8·D per image: SiLU(c), the six adaLN vectors and the two (1 + scale), and the two fp32 factors
    w·(1 + scale) that fold RMSNorm's gain into the modulation.
    The terms were fitted to, and are tested against, the bytes autograd saves with PyTorch's CPU kernels.
    Attention dropout (0 in every JiT preset) would keep n×n probabilities and is not modelled.
    """
    if config.attn_drop > 0 and dropout:
        raise ValueError(
            f"attn_drop={config.attn_drop}: attention dropout keeps n×n probabilities and is not modelled; use 0"
        )
    if device_type not in ("cuda", "cpu"):
        raise ValueError(f"device_type={device_type!r} is not one of cuda, cpu")
    a = _activation_bytes(precision)
    mixed = a < 4
    d, h = config.hidden_size, config.mlp_hidden
    norms = 8 * d
    qk_norm = (16 if mixed else 8) * d
    attention = (18 if mixed and config.attn_fp32_logits else 6 * a) * d
    linear_inputs_and_branches = 4 * a * d
    swiglu = 4 * a * h
    scalars = 4 * (2 + (5 if mixed else 3) * config.num_heads)
    masks = ((1 if device_type == "cuda" else a) * (d + h)) if dropout and config.proj_drop > 0 else 0
    per_token = norms + qk_norm + attention + linear_inputs_and_branches + swiglu + scalars + masks
    return tokens * per_token + 9 * a * d + 8 * d


def activation_bytes_per_image(config: JiTConfig, precision: str = "bf16", device_type: str = "cuda") -> int:
    """Bytes autograd keeps from the forward to the backward pass of one training image (eager jitlib; an estimate).

    Σ over blocks of :func:`block_activation_bytes` (n² image tokens, plus the in-context tokens from
    block `in_context_start` on), plus the patch embedding (image and bottleneck output, a bytes each), the time MLP
    ((256 + 2D)·a), the conditioning c (4D) and label (8), the final layer (per image token the fp32 normalised
    x·r, 4D, its rsqrt, 4, and the head's input a·D; per image its
    adaLN vectors 2a·D and the fp32 factor w·(1 + scale), 4D) and the v-loss (one fp32 image + 4).
    Exact for PyTorch's CPU kernels (tests/test_budget.py); CUDA kernels may lay some tensors out differently.
    """
    a = _activation_bytes(precision)
    cfg = config
    image_tokens, pixels = cfg.grid_size**2, cfg.in_channels * cfg.input_size**2
    blocks, tokens = 0, image_tokens
    for i in range(cfg.depth):
        if cfg.in_context_len > 0 and i == cfg.in_context_start:
            tokens += cfg.in_context_len
        blocks += block_activation_bytes(
            cfg, tokens, precision=precision, dropout=cfg.has_dropout(i), device_type=device_type
        )
    embed = a * pixels + (a * cfg.bottleneck_dim * image_tokens if cfg.bottleneck_dim is not None else 0)
    condition = (256 + 2 * cfg.hidden_size) * a + 4 * cfg.hidden_size + 8
    final = image_tokens * ((4 + a) * cfg.hidden_size + 4) + (2 * a + 4) * cfg.hidden_size
    loss = 4 * pixels + 4
    return blocks + embed + condition + final + loss


def saved_tensor_bytes(net: JiT, batch: int, precision: str = "bf16", *, seed: int = 0) -> int:
    """Measured, not estimated: bytes of the distinct storages autograd saves in one training loss of `batch` images.

    Runs ``Denoiser(net).loss`` (x-prediction, v-loss) on random data under the autocast of `precision` on the net's
    device, and sums each storage the backward pass would read once (parameters, buffers and RoPE's cached rotation tables
    excluded, autocast copies included).
    """
    a = _activation_bytes(precision)
    cfg = net.config
    device = next(net.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    shape = (batch, cfg.in_channels, cfg.input_size, cfg.input_size)
    x = torch.randn(shape, generator=gen, device=device)
    eps = torch.randn(shape, generator=gen, device=device)
    t = torch.rand(batch, generator=gen, device=device)
    y = torch.randint(0, max(cfg.num_classes, 1), (batch,), generator=gen, device=device)
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    params |= {b.untyped_storage().data_ptr() for b in net.buffers()}
    saved: dict[int, int] = {}

    ropes = [m for m in net.modules() if hasattr(m, "_rotations")]

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        # RoPE's cached rotation tables are constants of the model like its buffers (built on first use)
        tables = {r.untyped_storage().data_ptr() for m in ropes for r in m._rotations.values()}
        if storage.data_ptr() not in params and storage.data_ptr() not in tables:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    dtype = {2: torch.bfloat16 if precision == "bf16" else torch.float16}.get(a)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = Denoiser(net).loss(x, eps, t, y).mean()  # the graph (and so every saved storage) lives on
    del loss
    return sum(saved.values())


def measured_activation_bytes_per_image(net: JiT, precision: str = "bf16") -> int:
    """Measured per-image activation bytes: saved_tensor_bytes(batch 2) − saved_tensor_bytes(batch 1).

    The difference cancels what does not grow with the batch (autocast's weight copies), leaving one image's share.
    """
    return saved_tensor_bytes(net, 2, precision) - saved_tensor_bytes(net, 1, precision)


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated bytes on one GPU, by component; ``total`` is their sum. An estimate, not a measurement."""

    weights: int
    grads: int
    adam: int
    ema: int
    autocast_copies: int
    ddp_buckets: int
    activations: int
    images_per_gpu: int

    @property
    def state(self) -> int:
        """Everything but the activations: weights, gradients, AdamW moments, EMAs, autocast copies, DDP buckets."""
        return self.weights + self.grads + self.adam + self.ema + self.autocast_copies + self.ddp_buckets

    @property
    def total(self) -> int:
        """state + activations."""
        return self.state + self.activations

    def describe(self) -> str:
        """One line in GB (10⁹ bytes), marked as an estimate."""
        parts = ", ".join(f"{f.name} {getattr(self, f.name) / GB:.2f}" for f in fields(self)[:-1])
        return f"estimate for {self.images_per_gpu} images/GPU: {self.total / GB:.1f} GB ({parts})"


def training_memory(
    config: JiTConfig,
    images_per_gpu: int,
    *,
    precision: str = "bf16",
    num_ema: int = 3,
    strategy: str = "ddp",
    world_size: int = 1,
    device_type: str = "cuda",
) -> MemoryEstimate:
    """Estimated memory of one GPU training `config` on `images_per_gpu` images per step (AdamW, `num_ema` EMAs).

    weights 4P, gradients 4P', AdamW 8P', EMAs 4P'·num_ema (P all parameters, P' trainable ones), autocast copies
    2·(Linear/Conv weights) unless fp32, DDP buckets 4P' when world_size > 1; FSDP divides the first four by
    world_size. Activations: images_per_gpu × :func:`activation_bytes_per_image`.
    """
    if images_per_gpu < 0 or num_ema < 0 or world_size < 1:
        raise ValueError(
            f"images_per_gpu={images_per_gpu}, num_ema={num_ema} must be >= 0 and world_size={world_size} >= 1"
        )
    if strategy not in ("ddp", "fsdp"):
        raise ValueError(f"strategy={strategy!r} is not one of ddp, fsdp")
    total, trainable, cast = parameter_counts(config)
    shard = world_size if strategy == "fsdp" else 1
    a = _activation_bytes(precision)
    return MemoryEstimate(
        weights=4 * total // shard,
        grads=4 * trainable // shard,
        adam=8 * trainable // shard,
        ema=4 * trainable * num_ema // shard,
        autocast_copies=0 if a == 4 else 2 * cast,
        ddp_buckets=4 * trainable if strategy == "ddp" and world_size > 1 else 0,
        activations=images_per_gpu * activation_bytes_per_image(config, precision, device_type),
        images_per_gpu=images_per_gpu,
    )


def max_images_per_gpu(
    config: JiTConfig,
    device: str | Device,
    *,
    num_ema: int = 3,
    strategy: str = "ddp",
    world_size: int = 1,
    usable_fraction: float = USABLE_FRACTION,
) -> int:
    """Largest per-GPU batch whose estimated memory fits in usable_fraction × the device's memory (0 if none does).

    The device's own precision is used (bf16, fp16 on a T4); 1 − usable_fraction is left for what the estimate
    leaves out (CUDA context, workspaces, transient backward buffers, fragmentation) — an assumption.
    """
    if not 0 < usable_fraction <= 1:
        raise ValueError(f"usable_fraction={usable_fraction} must lie in (0, 1]")
    dev = get_device(device)
    empty = training_memory(
        config, 0, precision=dev.precision, num_ema=num_ema, strategy=strategy, world_size=world_size
    )
    free = usable_fraction * dev.memory_gb * GB - empty.state
    return max(0, int(free // activation_bytes_per_image(config, dev.precision)))


# ---------------------------------------------------------------------------------------------------------------
# Compute and time
# ---------------------------------------------------------------------------------------------------------------


def train_flops_per_image(config: JiTConfig) -> int:
    """FLOPs of one training image: forward + backward = 3 × forward FLOPs = 6 × forward MACs."""
    return 3 * forward_flops(config).flops


@dataclass(frozen=True)
class ThroughputEstimate:
    """Estimated training speed at an assumed MFU: images/s over all GPUs, GPU-hours and wall-clock hours per epoch."""

    images_per_sec: float
    gpu_hours_per_epoch: float
    hours_per_epoch: float
    mfu: float
    num_gpus: int

    def describe(self) -> str:
        """One line, marked as an estimate with its MFU assumption."""
        return (
            f"estimate at MFU {self.mfu:.0%} on {self.num_gpus} GPU(s): {self.images_per_sec:,.0f} images/s, "
            f"{self.gpu_hours_per_epoch:.1f} GPU-hours ({self.hours_per_epoch:.2f} h) per epoch"
        )


def throughput(
    config: JiTConfig,
    device: str | Device,
    *,
    num_gpus: int = 1,
    mfu: float = DEFAULT_MFU,
    images_per_epoch: int = IMAGENET_TRAIN_IMAGES,
) -> ThroughputEstimate:
    """images/s = num_gpus · mfu · peak / (6·MACs); GPU-hours per epoch = images_per_epoch · 6·MACs / (mfu · peak) / 3600."""
    if not 0 < mfu <= 1 or num_gpus < 1 or images_per_epoch < 1:
        raise ValueError(
            f"mfu={mfu} must lie in (0, 1], num_gpus={num_gpus} and images_per_epoch={images_per_epoch} must be >= 1"
        )
    per_gpu = mfu * get_device(device).peak_flops / train_flops_per_image(config)
    gpu_hours = images_per_epoch / per_gpu / 3600
    return ThroughputEstimate(per_gpu * num_gpus, gpu_hours, gpu_hours / num_gpus, mfu, num_gpus)


def implied_mfu(
    config: JiTConfig,
    device: str | Device,
    *,
    num_gpus: int,
    epochs: float,
    days: float,
    images_per_epoch: int = IMAGENET_TRAIN_IMAGES,
) -> float:
    """The MFU a reported duration implies: epochs · images · 6·MACs / (days · 86400 · num_gpus · peak)."""
    if num_gpus < 1 or epochs <= 0 or days <= 0:
        raise ValueError(f"num_gpus={num_gpus}, epochs={epochs} and days={days} must be positive")
    work = epochs * images_per_epoch * train_flops_per_image(config)
    return work / (days * 86400 * num_gpus * get_device(device).peak_flops)


def network_passes_per_image(
    steps: int = 50,
    method: str = "heun",
    cfg_scale: float = 1.0,
    cfg_interval: tuple[float, float] = (0.1, 1.0),
    last_step: str = "euler",
) -> int:
    """Network evaluations (per image, each of one image) that :func:`jitlib.diffusion.sampling.sample` makes: counted, not derived.

    Runs the sampler on one scalar "image" with a network that returns zeros and counts the rows it is given, so
    the count follows the sampler exactly (Heun's final Euler step, CFG's unconditional rows only inside the interval).
    """
    rows = 0

    def counting_net(z: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        nonlocal rows
        rows += z.shape[0]
        return torch.zeros_like(z)

    labels, null = torch.zeros(1, dtype=torch.long), 1
    sample(
        Denoiser(counting_net),
        torch.zeros(1, 1),
        steps=steps,
        method=method,
        labels=labels,
        null_label=null,
        cfg_scale=cfg_scale,
        cfg_interval=cfg_interval,
        last_step=last_step,
    )
    return rows


def sampling_flops_per_image(config: JiTConfig, **sampler) -> int:
    """FLOPs to generate one image: network passes (:func:`network_passes_per_image`) × 2 × forward MACs."""
    return network_passes_per_image(**sampler) * forward_flops(config).flops
