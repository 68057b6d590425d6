"""The operator IR: what a network runs, with explicit shapes (batch and dtype are given at prediction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from gpusim.errors import OpError


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
    name: str = field(default="", kw_only=True)

    @property
    def flops(self) -> int:
        """Useful floating-point operations (a multiply-add counts 2)."""
        return 0


@dataclass(frozen=True)
class Conv2d(Op):
    """2-D convolution, NCHW; depthwise when groups == in_channels > 1."""

    kind: ClassVar[str] = "conv2d"
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


@dataclass(frozen=True)
class Linear(Op):
    """Fully connected layer on `batch` rows (all leading dimensions flattened)."""

    kind: ClassVar[str] = "linear"
    batch: int
    in_features: int
    out_features: int

    def __post_init__(self) -> None:
        _positive("linear", batch=self.batch, in_features=self.in_features, out_features=self.out_features)

    @property
    def flops(self) -> int:
        return 2 * self.batch * self.in_features * self.out_features


@dataclass(frozen=True)
class Matmul(Op):
    """Batched matrix multiply: [batch, m, k] @ [batch, k, n] (torch.bmm, attention)."""

    kind: ClassVar[str] = "bmm"
    batch: int
    m: int
    n: int
    k: int

    def __post_init__(self) -> None:
        _positive("bmm", batch=self.batch, m=self.m, n=self.n, k=self.k)

    @property
    def flops(self) -> int:
        return 2 * self.batch * self.m * self.n * self.k


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
