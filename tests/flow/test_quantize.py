import numpy as np
import pytest

from flow.quantize import DEFAULT_BOUND, ZERO_CODE, dequantize_flow, max_error, quantize_flow


def test_zero_round_trips_exactly():
    codes = quantize_flow(np.zeros((4, 3, 2), np.float32))
    assert (codes == ZERO_CODE).all()
    assert (dequantize_flow(codes) == 0.0).all()


def test_round_trip_error_inside_bound():
    flow = np.linspace(-DEFAULT_BOUND, DEFAULT_BOUND, 100_001, dtype=np.float32)
    err = np.abs(dequantize_flow(quantize_flow(flow)) - flow)
    assert err.max() <= max_error() + 1e-6
    assert max_error() < 0.08


def test_symmetric_and_clipped():
    flow = np.array([-100.0, -20.0, -3.3, 3.3, 20.0, 100.0], np.float32)
    back = dequantize_flow(quantize_flow(flow))
    np.testing.assert_allclose(back, -back[::-1], atol=0)  # symmetric: -x decodes to exactly minus x's decoding
    assert back[0] == back[1] == -DEFAULT_BOUND and back[-1] == back[-2] == DEFAULT_BOUND
    assert quantize_flow(flow).min() == 1  # code 0 is never used


def test_other_bound_and_bad_bound():
    flow = np.array([-5.0, 0.0, 2.5, 5.0], np.float32)
    assert np.abs(dequantize_flow(quantize_flow(flow, 5.0), 5.0) - flow).max() <= max_error(5.0)
    with pytest.raises(ValueError, match="bound"):
        quantize_flow(flow, 0.0)
