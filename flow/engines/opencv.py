"""TV-L1 through OpenCV's contrib module: `cv2.optflow.DualTVL1OpticalFlow_create` (the reference engine)."""

import cv2
import numpy as np

from flow.tvl1 import TVL1Params, check_pairs

if not hasattr(cv2, "optflow"):
    raise ImportError(
        f"cv2 {cv2.__version__} at {cv2.__file__} has no cv2.optflow (TV-L1 lives in the contrib build). Fix: "
        "pip uninstall -y opencv-python opencv-python-headless && "
        "pip install --force-reinstall opencv-contrib-python-headless"
    )


class OpenCVTVL1:
    """OpenCV's DualTVL1OpticalFlow; one object per process, reused for every pair (building it is not free).

    OpenCV parallelises some loops internally; workers call `cv2.setNumThreads(1)` so processes do not oversubscribe.
    """

    name = "opencv"
    version = cv2.__version__

    def __init__(self, params: TVL1Params | None = None):
        self.params = params if params is not None else TVL1Params()
        self._tvl1, self._shape = self._create(), None

    def _create(self):
        p = self.params
        return cv2.optflow.DualTVL1OpticalFlow_create(
            tau=p.tau,
            lambda_=p.lambda_,
            theta=p.theta,
            nscales=p.nscales,
            warps=p.warps,
            epsilon=p.epsilon,
            innnerIterations=p.inner_iterations,  # sic: OpenCV's keyword has three n's
            outerIterations=p.outer_iterations,
            scaleStep=p.scale_step,
            gamma=p.gamma,
            medianFiltering=p.median_filtering,
            useInitialFlow=p.use_initial_flow,
        )

    def _for_size(self, shape: tuple[int, ...]):
        """The cv2 object, built anew when the frame size changes: after one size it computes different flow for
        another (up to 5.6 px on 48x64 after 24x32), so a video's flow would depend on the videos before it."""
        if self._shape is not None and self._shape != shape:
            self._tvl1 = self._create()
        self._shape = shape
        return self._tvl1

    def calc(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Flow (H, W, 2) float32 from one (H, W) uint8 grayscale frame to the next."""
        return self._for_size(prev.shape).calc(prev, nxt, None)

    def calc_pairs(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Flow (n, H, W, 2) float32 for n pairs of (n, H, W) uint8 grayscale frames, prev[i] -> nxt[i]."""
        prev, nxt = check_pairs(prev, nxt, self.name)
        out = np.empty(prev.shape + (2,), np.float32)
        tvl1 = self._for_size(prev.shape[1:])
        for i in range(len(prev)):
            out[i] = tvl1.calc(prev[i], nxt[i], None)
        return out
