import numpy as np
import pytest

from flow.engines import make_engine
from flow.tvl1 import TVL1Params, align_flow
from tests.helpers import textured_frames


def test_params_defaults_match_opencv():
    import cv2

    o = cv2.optflow.DualTVL1OpticalFlow_create()
    p = TVL1Params()
    ours = (p.tau, p.lambda_, p.theta, p.nscales, p.warps, p.epsilon, p.inner_iterations, p.outer_iterations)
    theirs = (o.getTau(), o.getLambda(), o.getTheta(), o.getScalesNumber(), o.getWarpingsNumber(), o.getEpsilon(),
              o.getInnerIterations(), o.getOuterIterations())
    assert ours == theirs
    assert (p.scale_step, p.gamma, p.median_filtering, p.use_initial_flow) == (
        o.getScaleStep(), o.getGamma(), o.getMedianFiltering(), o.getUseInitialFlow())
    assert TVL1Params.from_attrs(TVL1Params(tau=0.2, warps=3).to_attrs()) == TVL1Params(tau=0.2, warps=3)


def test_opencv_engine_recovers_translation():
    gray = textured_frames(3, 48, 64, dx=2.0, dy=-1.0)[..., 1]
    engine = make_engine("opencv", TVL1Params())
    assert engine.name == "opencv" and engine.version
    flow = engine.calc_pairs(gray[:-1], gray[1:])
    assert flow.shape == (2, 48, 64, 2) and flow.dtype == np.float32
    inner = flow[:, 8:-8, 8:-8]
    np.testing.assert_allclose(np.median(inner, axis=(1, 2)), [[2.0, -1.0]] * 2, atol=0.3)


def test_engine_params_are_used():
    engine = make_engine("opencv", TVL1Params(nscales=2, warps=1))
    assert engine._tvl1.getScalesNumber() == 2 and engine._tvl1.getWarpingsNumber() == 1


def test_bad_inputs():
    engine = make_engine("opencv")
    with pytest.raises(ValueError, match="uint8 grayscale"):
        engine.calc_pairs(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown TV-L1 engine 'nope'"):
        make_engine("nope")


def test_align_flow_conventions():
    pairs = np.arange(1, 3, dtype=np.float32)[:, None, None, None] * np.ones((2, 2, 3, 2), np.float32)
    back = align_flow(pairs, 3, "backward")
    fwd = align_flow(pairs, 3, "forward")
    assert (back[0] == 0).all() and (back[1] == 1).all() and (back[2] == 2).all()
    assert (fwd[0] == 1).all() and (fwd[1] == 2).all() and (fwd[2] == 0).all()
    with pytest.raises(ValueError, match="convention"):
        align_flow(pairs, 3, "sideways")


def test_missing_contrib_build_says_how_to_fix(monkeypatch):
    import importlib.util

    import cv2

    import flow.engines.opencv

    monkeypatch.delattr(cv2, "optflow")
    spec = importlib.util.spec_from_file_location("opencv_engine_probe", flow.engines.opencv.__file__)
    with pytest.raises(ImportError, match="pip uninstall -y opencv-python opencv-python-headless && pip install"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_opencv_engine_gives_the_same_flow_whatever_size_it_saw_before():
    """cv2's TV-L1 object remembers a previous frame size and then computes other flow: the engine rebuilds it."""
    big = textured_frames(2, 48, 64, 2.0, 1.0, seed=0)[..., 0]
    small = textured_frames(2, 24, 32, 1.0, 0.0, seed=1)[..., 0]
    fresh = make_engine("opencv").calc_pairs(big[:1], big[1:])
    engine = make_engine("opencv")
    engine.calc_pairs(small[:1], small[1:])
    np.testing.assert_array_equal(engine.calc_pairs(big[:1], big[1:]), fresh)
    np.testing.assert_array_equal(engine.calc(big[0], big[1]), fresh[0])
