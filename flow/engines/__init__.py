"""TV-L1 engines: interchangeable implementations of `calc_pairs(prev, next) -> (n, H, W, 2)` flow.

Every engine has `name`, `version`, `__init__(params: TVL1Params)` and `calc_pairs(prev, next)` where prev/next are
(n, H, W) uint8 grayscale frames and the result maps prev -> next (prev(x) ~ next(x + flow(x))), float32 pixels.
"""

from flow.tvl1 import TVL1Params

ENGINES = ("opencv", "numba", "torch")


def make_engine(name: str, params: TVL1Params | None = None):
    """Build the TV-L1 engine called `name` ("opencv", "numba" or "torch") with `params` (OpenCV defaults if None).

    Imports happen inside each branch so that a missing optional dependency only matters for the engine asked for.
    """
    params = params if params is not None else TVL1Params()
    if name == "opencv":
        from flow.engines.opencv import OpenCVTVL1

        return OpenCVTVL1(params)
    elif name == "numba":
        from flow.engines.numba_tvl1 import NumbaTVL1

        return NumbaTVL1(params)
    elif name == "torch":
        from flow.engines.torch_tvl1 import TorchTVL1

        return TorchTVL1(params)
    raise ValueError(f"unknown TV-L1 engine {name!r}; choose one of {', '.join(ENGINES)}")
