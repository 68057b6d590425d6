"""The operator IR and its registry: what a network runs, with explicit shapes (batch and dtype are
given at prediction).

An op kind is its class: its dataclass fields, `lower` (the kernel launches it makes on a `Target`),
`channel_fields` (which fields follow a planner width), `precision` (which of PyTorch's op classes
sets its dtype: gpusim.eager.Precision), `gemm` (counted as MACs, run in autocast's low dtype) and
`host_overhead` (the calibrated host cost of one eager call). `register` enters a class in `OP_KINDS`
under its kind name(s); every consumer (predictor, planner, validation) dispatches through it, so an
op is added in its own module (docs/architecture.md, "Adding an op"; gpusim/attention.py is one).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar, Literal, NamedTuple, TypeVar

from gpusim.errors import OpError

if TYPE_CHECKING:
    from gpusim.lowering import Algorithm

Arrangements = tuple[tuple[int, int, int], ...]
ChannelSide = Literal["in", "out"]


class Target(NamedTuple):
    """What lowering needs to know about the GPU and dtype an op runs on."""

    dtype: str
    elem_bytes: int
    simt: bool  # GEMMs run on CUDA cores (no tensor cores for the dtype)
    fused_tiles: Arrangements = ()  # cuDNN's fused Winograd arrangements (spec.arch.fused_winograd_tiles)
    sms: int = 108
    threads_per_sm: int = 2048
    mma: tuple[int, ...] = ()  # M x N x K of the dtype's tensor-core MMA (spec.arch.tensor_cores); () without
    cc: int = 80  # compute capability x 10 (8.0 -> 80), for libraries that pick kernels by it


class ChannelField(NamedTuple):
    """An op field that follows a channel width: `side` 'in' (the input's channels) or 'out' (the
    output's). It scales in proportion: at w of C channels the field is value * w / C (channels, or
    elements per channel times channels; attention heads at head_dim channels each)."""

    name: str
    side: ChannelSide


OP_KINDS: dict[str, type[Op]] = {}

OpClass = TypeVar("OpClass", bound="type[Op]")


def register(cls: OpClass) -> OpClass:
    """Class decorator: enter an op class in OP_KINDS under its `kind_names` (default: its `kind`)."""
    for name in cls.kind_names or (cls.kind,):
        if name in OP_KINDS and OP_KINDS[name] is not cls:
            raise OpError(f"op kind {name!r} is registered twice ({OP_KINDS[name].__name__}, {cls.__name__})")
        OP_KINDS[name] = cls
    return cls


def op_class(kind: str) -> type[Op]:
    """The registered class of op kind `kind`; a one-line OpError naming the known kinds otherwise."""
    if kind not in OP_KINDS:
        raise OpError(f"op kind {kind!r} unknown; allowed: {', '.join(OP_KINDS)}")
    return OP_KINDS[kind]


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _positive(op: str, **values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise OpError(f"{op}: {name} must be at least 1, got {v}")


@dataclass(frozen=True)
class Op:
    """Base class: every op has a kind (e.g. 'conv2d') and an optional name (e.g. 'layer1.0.conv1')."""

    kind: ClassVar[str] = "op"
    kind_names: ClassVar[tuple[str, ...]] = ()  # the names it registers under, where not just `kind`
    precision: ClassVar[Literal["conv", "matmul", "storage"]] = "storage"  # gpusim.eager.Precision's class
    gemm: ClassVar[bool] = False  # counted as MACs; runs in autocast's low dtype
    host_overhead: ClassVar[str] = "host_overhead_memory_us"  # gpusim.calibration constant
    batch_fields: ClassVar[tuple[str, ...]] = ("batch",)  # fields that grow linearly with the batch
    zero_fields: ClassVar[tuple[str, ...]] = ()  # fields that may be 0 (every other one is at least 1)
    name: str = field(default="", kw_only=True)

    @property
    def flops(self) -> int:
        """Useful floating-point operations (a multiply-add counts 2)."""
        return 0

    def lower(self, target: Target) -> list[Algorithm]:
        """The algorithms that can run this op on `target`, each a list of kernel launches."""
        raise OpError(f"op {type(self).__name__}: no lowering")

    def channel_fields(self) -> tuple[ChannelField, ...]:
        """The fields that follow a planner channel width (none by default)."""
        return ()

    def with_batch(self, batch: int) -> Op:
        """This per-sample op for `batch` samples (its batch_fields times batch)."""
        if batch == 1:
            return self
        return replace(self, **{f: getattr(self, f) * batch for f in self.batch_fields})


@register
@dataclass(frozen=True)
class Conv2d(Op):
    """2-D convolution, NCHW; depthwise when groups == in_channels > 1."""

    kind: ClassVar[str] = "conv2d"
    precision: ClassVar[Literal["conv", "matmul", "storage"]] = "conv"
    gemm: ClassVar[bool] = True
    host_overhead: ClassVar[str] = "host_overhead_conv_us"
    zero_fields: ClassVar[tuple[str, ...]] = ("padding",)
    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel_size: int | tuple[int, int] = 3
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    dilation: int | tuple[int, int] = 1
    groups: int = 1

    def __post_init__(self) -> None:
        _positive(
            "conv2d",
            batch=self.batch,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            height=self.height,
            width=self.width,
            groups=self.groups,
        )
        for attr in ("kernel_size", "stride", "dilation"):
            _positive("conv2d", **{attr: min(_pair(getattr(self, attr)))})
        if min(_pair(self.padding)) < 0:
            raise OpError(f"conv2d: padding must be at least 0, got {self.padding}")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise OpError(
                f"conv2d: groups={self.groups} must divide in_channels={self.in_channels} "
                f"and out_channels={self.out_channels}"
            )
        if min(self.out_hw) < 1:
            raise OpError(
                f"conv2d: kernel {self.kernel_size} does not fit a {self.height}x{self.width} input "
                f"with padding {self.padding}"
            )

    @property
    def out_hw(self) -> tuple[int, int]:
        """Output height and width."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
            _pair(self.kernel_size),
            _pair(self.stride),
            _pair(self.padding),
            _pair(self.dilation),
        )
        return (
            (self.height + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
            (self.width + 2 * pw - dw * (kw - 1) - 1) // sw + 1,
        )

    @property
    def is_depthwise(self) -> bool:
        """One filter group per input channel (MobileNet-style)."""
        return self.groups > 1 and self.groups == self.in_channels

    @property
    def flops(self) -> int:
        kh, kw = _pair(self.kernel_size)
        p, q = self.out_hw
        return 2 * self.batch * self.out_channels * p * q * (self.in_channels // self.groups) * kh * kw

    def lower(self, target: Target) -> list[Algorithm]:
        """Implicit GEMM, Winograd (CUDA cores) or the depthwise kernel: gpusim.lowering."""
        from gpusim.lowering import lower_conv  # the problem types build on this module

        return lower_conv(self, target)

    def channel_fields(self) -> tuple[ChannelField, ...]:
        """Input and output channels (and a depthwise conv's groups, which are its channels)."""
        fields = (ChannelField("in_channels", "in"), ChannelField("out_channels", "out"))
        return fields + ((ChannelField("groups", "out"),) if self.is_depthwise else ())


@register
@dataclass(frozen=True)
class Linear(Op):
    """Fully connected layer on `batch` rows (all leading dimensions flattened)."""

    kind: ClassVar[str] = "linear"
    precision: ClassVar[Literal["conv", "matmul", "storage"]] = "matmul"
    gemm: ClassVar[bool] = True
    host_overhead: ClassVar[str] = "host_overhead_gemm_us"
    batch: int
    in_features: int
    out_features: int

    def __post_init__(self) -> None:
        _positive("linear", batch=self.batch, in_features=self.in_features, out_features=self.out_features)

    @property
    def flops(self) -> int:
        return 2 * self.batch * self.in_features * self.out_features

    @property
    def operand_elements(self) -> int:
        """Elements it must move at least once: input, weights and output."""
        return self.batch * self.in_features + self.in_features * self.out_features + self.batch * self.out_features

    def lower(self, target: Target) -> list[Algorithm]:
        """cuBLAS's GEMM (and the GEMV / small-N pass where a side is small): gpusim.lowering."""
        from gpusim.lowering import lower_linear

        return lower_linear(self, target)

    def channel_fields(self) -> tuple[ChannelField, ...]:
        """Input and output features."""
        return ChannelField("in_features", "in"), ChannelField("out_features", "out")


@register
@dataclass(frozen=True)
class Matmul(Op):
    """Batched matrix multiply: [batch, m, k] @ [batch, k, n] (torch.bmm, attention)."""

    kind: ClassVar[str] = "bmm"
    precision: ClassVar[Literal["conv", "matmul", "storage"]] = "matmul"
    gemm: ClassVar[bool] = True
    host_overhead: ClassVar[str] = "host_overhead_gemm_us"
    batch: int
    m: int
    n: int
    k: int

    def __post_init__(self) -> None:
        _positive("bmm", batch=self.batch, m=self.m, n=self.n, k=self.k)

    @property
    def flops(self) -> int:
        return 2 * self.batch * self.m * self.n * self.k

    @property
    def operand_elements(self) -> int:
        """Elements it must move at least once: both operands and the result of every batch entry."""
        return self.batch * (self.m * self.k + self.k * self.n + self.m * self.n)

    def lower(self, target: Target) -> list[Algorithm]:
        """cuBLAS's strided-batched GEMM: gpusim.lowering."""
        from gpusim.lowering import lower_bmm

        return lower_bmm(self, target)


@register
@dataclass(frozen=True)
class MemoryOp(Op):
    """A memory-bound op: reads `elements_in`, writes `elements_out`, few FLOPs per element.

    kind_name is one of MEMORY_KINDS; use the helpers below for the common shapes. `reduce` sums
    elements_in / elements_out contiguous inputs into each output (global pooling, mean), `cast`
    converts between dtypes. in_bytes / out_bytes: element sizes read and written where they differ
    from the prediction's dtype (autocast: fp16 in, fp32 out); 0 means the dtype's size."""

    kind_name: str
    elements_in: int
    elements_out: int
    flops_per_element: float = 1.0
    in_bytes: float = 0.0
    out_bytes: float = 0.0

    MEMORY_KINDS: ClassVar[tuple[str, ...]] = (
        "elementwise",
        "batchnorm",
        "layernorm",
        "pool",
        "softmax",
        "reduce",
        "cast",
        "other",
    )

    kind_names: ClassVar[tuple[str, ...]] = MEMORY_KINDS
    batch_fields: ClassVar[tuple[str, ...]] = ("elements_in", "elements_out")

    def __post_init__(self) -> None:
        if self.kind_name not in self.MEMORY_KINDS:
            raise OpError(f"memory op: kind {self.kind_name!r} unknown; allowed: {', '.join(self.MEMORY_KINDS)}")
        _positive(self.kind_name, elements_in=self.elements_in, elements_out=self.elements_out)

    @property  # type: ignore[override]
    def kind(self) -> str:  # noqa: D401
        """The op's kind ('elementwise', 'batchnorm', ...)."""
        return self.kind_name

    @property
    def flops(self) -> int:
        return int(self.elements_out * self.flops_per_element)

    def lower(self, target: Target) -> list[Algorithm]:
        """The streaming or reduction launches PyTorch makes: gpusim.memory_ops."""
        from gpusim.memory_ops import lower_memory

        return [lower_memory(self, target.elem_bytes, target.sms, target.threads_per_sm)]

    def channel_fields(self) -> tuple[ChannelField, ...]:
        """Its outputs follow the output's channels (its inputs: the planner follows each input tensor)."""
        return (ChannelField("elements_out", "out"),)


def elementwise(elements: int, inputs: int = 1, flops_per_element: float = 1.0, name: str = "") -> MemoryOp:
    """An elementwise op (activation, add, mul) over `elements` outputs from `inputs` tensors."""
    return MemoryOp("elementwise", elements * inputs, elements, flops_per_element, name=name)


def batchnorm(batch: int, channels: int, height: int, width: int, name: str = "") -> MemoryOp:
    """Inference batch norm: one scale and shift per element."""
    n = batch * channels * height * width
    return MemoryOp("batchnorm", n, n, 2.0, name=name)


def layernorm(rows: int, features: int, name: str = "") -> MemoryOp:
    """Layer norm over the last dimension (mean, variance, scale, shift)."""
    return MemoryOp("layernorm", rows * features, rows * features, 8.0, name=name)


def softmax(rows: int, features: int, name: str = "") -> MemoryOp:
    """Softmax over the last dimension."""
    return MemoryOp("softmax", rows * features, rows * features, 5.0, name=name)


def pool(
    batch: int, channels: int, height: int, width: int, out_height: int, out_width: int, window: int = 1, name: str = ""
) -> MemoryOp:
    """Max/avg pooling: reads the input once, `window` compares or adds per output."""
    return MemoryOp(
        "pool", batch * channels * height * width, batch * channels * out_height * out_width, float(window), name=name
    )
