"""What the measuring process adds to a recorded time, beyond the GPU and the op's fixed host cost.

PyTorch 2.1 added an LRU cache of cuDNN execution plans (pytorch/pytorch#104369, at most
10,000 plans) whose every lookup called `std::list::size()`, which is linear in the list's
length under the pre-C++11 GCC ABI that PyTorch's pip wheels use (pytorch/pytorch#108474,
fix proposed in #114110). So in PyTorch 2.1 the host time of every cuDNN convolution grows with the
number of distinct convolutions the process has run before it. A file of timings measured
in one process shows it as host time growing with the row's position (NeuSight's conv files:
from ~30 us on their first rows to ~300-800 us on their last, the same for every conv size).
The simulator prices it as `cudnn_plan_cache_us_per_entry` x plans in the cache: the cost of
walking one list node on the measuring host, fitted per architecture family with the family's
cuDNN efficiencies (each family's convolutions in the shared data were measured on its own hosts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from gpusim.ops import Conv2d
from validation.readers import Measurement

# PyTorch releases whose cuDNN plan cache lookup is linear in its size, and the cache's limit.
LINEAR_PLAN_CACHE_TORCH = ("2.1.",)
PLAN_CACHE_LIMIT = 10_000


def affected(torch_version: str) -> bool:
    """Whether a PyTorch version string ('2.1.0', 'p2.1.0', '2.1.2+cu121') has the linear plan-cache lookup."""
    return torch_version.lstrip("pv").startswith(LINEAR_PLAN_CACHE_TORCH)


def cached_conv_plans(measurements: Sequence[Measurement]) -> list[int]:
    """Per row: cuDNN plans already cached when it ran, assuming the rows ran in file order in one
    process per device (distinct conv shapes before it, capped at the cache limit); 0 for rows
    that are not convolutions or were measured with an unaffected PyTorch."""
    seen: dict[str, set[Conv2d]] = {}
    counts = []
    for m in measurements:
        if not isinstance(m.op, Conv2d) or not affected(m.torch):
            counts.append(0)
            continue
        shapes = seen.setdefault(m.device, set())
        counts.append(min(len(shapes), PLAN_CACHE_LIMIT))
        shapes.add(replace(m.op, name=""))
    return counts
