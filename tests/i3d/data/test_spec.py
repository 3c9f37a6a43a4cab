"""i3d.data.spec: the input spec read from the stores, checked across stores, saved and read back."""

import dataclasses

import numpy as np
import pytest

from flow.extract import ExtractOptions, extract_store
from flow.store_writer import write_store
from flow.tvl1 import TVL1Params
from i3d.data.spec import InputSpec, InputSpecError, check_matches, read_extraction, stores_extraction


def _store(path, attrs, h=24, w=32, jpeg_quality=95):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)
    return write_store(path, frames, np.zeros((3, h, w, 2), np.float32), attrs, bound=attrs.get("flow_bound", 20.0),
                       jpeg_quality=jpeg_quality)


def test_extraction_settings_come_from_the_store_attributes(tmp_path, translating_video):
    video, _ = translating_video(num_frames=4, height=48, width=64)
    opts = ExtractOptions(fps=15, short_side=40, engine="opencv", bound=8, tvl1=TVL1Params(warps=3), jpeg_quality=80)
    assert extract_store("v", video, tmp_path / "v.h5", opts)["status"] == "done"
    assert read_extraction(tmp_path / "v.h5") == {"fps": 15.0, "short_side": 40, "flow_engine": "opencv",
                                                  "tvl1": TVL1Params(warps=3), "flow_bound": 8.0,
                                                  "flow_convention": "backward", "jpeg_quality": 80,
                                                  "stored": True}


def test_stores_that_record_nothing_get_defaults_and_their_own_short_side(tmp_path):
    got = read_extraction(_store(tmp_path / "a.h5", {}, h=36, w=40))
    assert got == {**InputSpec().extraction(), "short_side": 36}


def test_mixed_stores_are_one_error_naming_two_stores_and_every_difference(tmp_path):
    a = _store(tmp_path / "a.h5", {"fps": 25.0, "engine": "numba", "flow_bound": 8.0})
    b = _store(tmp_path / "b.h5", {"fps": 25.0, "engine": "numba", "flow_bound": 8.0})
    c = _store(tmp_path / "c.h5", {"fps": 15.0, "engine": "opencv", "flow_bound": 8.0}, jpeg_quality=90)
    assert stores_extraction([a, b])["flow_engine"] == "numba"
    with pytest.raises(InputSpecError) as info:
        stores_extraction([a, b, c])
    message = str(info.value)
    assert f"{a} and {c} differ in" in message and str(b) not in message
    assert "fps 25.0 vs 15.0" in message and "flow_engine 'numba' vs 'opencv'" in message
    assert "jpeg_quality 95 vs 90" in message  # raw videos cannot look like both
    assert "flow_bound" not in message  # equal fields are not listed
    assert stores_extraction([]) is None
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputSpecError, match="bad.h5: unreadable store"):
        stores_extraction([tmp_path / "bad.h5"])


def test_check_matches_and_round_trip():
    spec = InputSpec(fps=15.0, flow_engine="numba", flow_bound=8.0, tvl1=TVL1Params(warps=3), crop_size=32)
    assert InputSpec.from_dict(spec.to_dict()) == spec
    check_matches(spec, spec.extraction(), "x")  # no error
    with pytest.raises(InputSpecError, match=r"runs/h5: .*flow_bound 8.0 \(model\) vs 20.0 \(stores\)"):
        check_matches(spec, {**spec.extraction(), "flow_bound": 20.0}, "runs/h5")
    with pytest.raises(InputSpecError, match="unknown field"):
        InputSpec.from_dict({**spec.to_dict(), "colour": "red"})
    with pytest.raises(InputSpecError, match="flow_bound=0"):
        dataclasses.replace(spec, flow_bound=0)
