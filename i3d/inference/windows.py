"""One pass of a whole video through I3D, computed in overlapping temporal windows of bounded length.

The Mixed_5c map of a whole video (1024, T', H', W'), T' = ceil(N / 8), is what `features` (mode="video") and
`predict` (whole-video specs) pool. In one pass the activations grow with N: about 4.2 MB per input frame at a
224-px crop, a quarter of that at 112 px (docs/PERFORMANCE.md, "Memory against video length").
Cut into windows, the same numbers come out as long as every kept Mixed_5c step saw exactly what it sees in the
one pass, which takes two things:

* The same padding. Time is padded TensorFlow-"SAME" (`i3d.models.inception.same_padding`): the stride-1 layers
  pad (1, 1) whatever the length, but Conv3d_1a (7, stride 2) pads 2 or 3 frames in front as the length is even
  or odd, and MaxPool3d_4a (3, stride 2) 0 or 1 step as its input length is even or odd: N mod 4 decides both.
  So a window starts on a multiple of the total stride 8 and its length has the video's remainder modulo 8; the
  last window then ends with the video and pads as it does.
* The same inputs. Following the layers back, Mixed_5c step m of an input sees input frames
  [8m - 42 - 2 p2 - p1, 8m + 56 - 2 p2 - p1] (p1, p2 the front padding of Conv3d_1a and MaxPool3d_4a: Mixed_5b/5c
  reach 2 steps, MaxPool3d_5a doubles, Mixed_4b-4f reach 5, MaxPool3d_4a doubles (+2 for its kernel), Mixed_3b/3c
  and Conv3d_2c reach 3, Conv3d_1a doubles (+6)). A step is kept when that range lies inside the window, or
  crosses only the video's own start or end: about 6 steps (48 frames) at a window's front and 7 at its back
  are recomputed by its neighbour.

    plan = window_plan(num_frames, window=256)   # [(start, end, first_step, end_step), ...]

The default window of 256 frames (+ up to 7) keeps 20 of its 32 steps, so a long video costs 1.6x the one pass in
compute, and one window of one stream holds about 1.1 GB of activations at a 224-px crop (0.3 GB at 112 px)
whatever the video's length. Only `InceptionI3d` has this arithmetic; other backbones take one pass.
"""

from __future__ import annotations

import math

from i3d.models.inception import same_padding

STRIDE = 8  # Mixed_5c steps are 8 input frames apart (Conv3d_1a, MaxPool3d_4a, MaxPool3d_5a: stride 2 in time)
WINDOW = 256  # default frames per pass
MIN_WINDOW = 128  # a window recomputes about 13 steps (104 frames) that see past its edges: 128 keeps 3-4


def step_reach(length: int) -> tuple[int, int]:
    """(lo, hi): Mixed_5c step m of an input of `length` frames sees input frames [8m + lo, 8m + hi]."""
    p1 = same_padding(length, 7, 2)[0]  # Conv3d_1a_7x7, stride 2
    p2 = same_padding(math.ceil(length / 2), 3, 2)[0]  # MaxPool3d_4a_3x3, stride 2
    return -42 - 2 * p2 - p1, 56 - 2 * p2 - p1


def window_plan(num_frames: int, window: int = WINDOW) -> list[tuple[int, int, int, int]]:
    """The windows a `num_frames` video goes through I3D in: (first frame, end frame, first kept Mixed_5c step,
    end kept step) each, steps counted in the whole video; consecutive windows' kept steps tile [0, ceil(N / 8)).

    A video of at most `window` frames is one window. Longer ones get windows of `window + num_frames % 8` frames
    (the last one shorter), starting on multiples of 8 (see the module docstring).
    """
    if window < MIN_WINDOW or window % STRIDE:
        raise ValueError(f"window={window}: use a multiple of {STRIDE} of at least {MIN_WINDOW} frames")
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames}: a video has at least one frame")
    steps = math.ceil(num_frames / STRIDE)
    if num_frames <= window:
        return [(0, num_frames, 0, steps)]
    length = window + num_frames % STRIDE
    lo, hi = step_reach(length)  # the same for every window: their lengths agree modulo 8
    front = math.ceil(-lo / STRIDE)  # first local step that sees no frame before its window
    plan, start, kept = [], 0, 0
    while kept < steps:
        end = min(start + length, num_frames)
        stop = steps if end == num_frames else start // STRIDE + (end - start - 1 - hi) // STRIDE + 1
        plan.append((start, end, kept, stop))
        start, kept = STRIDE * (stop - front), stop
    return plan
