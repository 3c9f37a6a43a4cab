"""flow.viz: exact colours of the colour-wheel flow coding."""

import numpy as np
import pytest

from flow.viz import colour_wheel, colour_wheel_image, flow_magnitude, flow_to_colour


def one(x: float, y: float, max_magnitude: float | None = 1.0) -> np.ndarray:
    return flow_to_colour(np.float32([[[x, y]]]), max_magnitude)[0, 0]


def test_wheel_has_55_colours_through_the_primaries():
    wheel = colour_wheel()
    assert wheel.shape == (55, 3)
    for index, rgb in [(0, (255, 0, 0)), (15, (255, 255, 0)), (21, (0, 255, 0)), (25, (0, 255, 255)),
                       (36, (0, 0, 255)), (49, (255, 0, 255))]:
        np.testing.assert_array_equal(wheel[index], rgb)


def test_directions_speeds_and_overflow():
    np.testing.assert_array_equal(one(0, 0), (255, 255, 255))  # still = white
    np.testing.assert_array_equal(one(1, 0), (255, 0, 0))  # right, full speed = red
    np.testing.assert_array_equal(one(1, -0.0), (255, 0, 0))  # the wheel closes: no seam at +-pi
    np.testing.assert_array_equal(one(0.5, 0), (255, 128, 128))  # half speed = half saturation
    np.testing.assert_array_equal(one(2, 0), (191, 0, 0))  # beyond max_magnitude: dimmed to 3/4
    np.testing.assert_array_equal(one(0, 1), (255, 234, 0))  # down: yellow (3/4 of the way to wheel[14])
    np.testing.assert_array_equal(one(-1, 0), (0, 197, 255))  # left: cyan-blue
    np.testing.assert_array_equal(one(0, -1), (103, 0, 255))  # up: violet


def test_auto_scale_uses_the_largest_speed_and_keeps_shape():
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 3, (2, 5, 7, 2)).astype(np.float32)
    image = flow_to_colour(flow)
    assert image.shape == (2, 5, 7, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(flow_to_colour(4 * flow), image)  # only directions and relative speeds matter
    np.testing.assert_array_equal(image, flow_to_colour(flow, float(flow_magnitude(flow).max())))
    fastest = np.unravel_index(flow_magnitude(flow).argmax(), flow.shape[:3])
    assert image[fastest].min() == 0  # the fastest pixel is fully saturated
    np.testing.assert_array_equal(flow_to_colour(np.zeros((3, 4, 2))), np.full((3, 4, 3), 255))


def test_legend_image():
    image = colour_wheel_image(5)
    np.testing.assert_array_equal(image[2, 2], (255, 255, 255))  # centre: no motion
    np.testing.assert_array_equal(image[2, 4], (255, 0, 0))  # right edge: right
    np.testing.assert_array_equal(image[0, 0], (255, 255, 255))  # corner: outside the circle
    np.testing.assert_array_equal(image[4, 2], one(0, 1))  # bottom: down


@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 3)])
def test_bad_shape_is_an_error(shape):
    with pytest.raises(ValueError, match=r"wants \(\.\.\., H, W, 2\) flow"):
        flow_to_colour(np.zeros(shape))


def test_bad_max_magnitude_is_an_error():
    with pytest.raises(ValueError, match="max_magnitude must be > 0"):
        flow_to_colour(np.zeros((2, 2, 2)), 0.0)
