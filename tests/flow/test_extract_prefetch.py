"""Decode-ahead in flow.extract: the same stores with and without it, and errors that stop the decode thread."""

import threading
import time
from functools import partial

import h5py
import numpy as np
import pytest

import flow.extract
import flow.stream
from common.runner import attempt
from flow.extract import ExtractOptions, extract_store
from flow.tvl1 import TVL1Params
from flow.video import VideoError, VideoReader

FAST = TVL1Params(nscales=2, warps=2, inner_iterations=10, outer_iterations=2)  # small budget: tests stay quick


def _opts(**kw) -> ExtractOptions:
    return ExtractOptions(short_side=0, batch=2, tvl1=FAST, **kw)


def _datasets(path):
    with h5py.File(path) as f:
        return [bytes(b) for b in f["rgb"][:]], f["flow"][:]


@pytest.mark.parametrize("max_frames", [None, 7])
def test_same_store_with_and_without_prefetch(translating_video, tmp_path, max_frames):
    path, _ = translating_video(num_frames=10, height=40, width=48, dx=2.0, dy=1.0)
    stores = {}
    for prefetch in (0, 2):
        record = extract_store("clip", path, tmp_path / f"p{prefetch}" / "clip.h5",
                               _opts(prefetch=prefetch, max_frames=max_frames))
        assert record["status"] == "done" and record["frames"] == (max_frames or 10), record
        stores[prefetch] = _datasets(record["store"])
    (rgb0, flow0), (rgb2, flow2) = stores[0], stores[2]
    assert rgb0 == rgb2 and len(rgb0) == (max_frames or 10)
    np.testing.assert_array_equal(flow0, flow2)
    assert (flow0[1:] != flow0[0]).any()  # real motion was stored, not only the zero flow[0]


def test_prefetch_must_not_be_negative():
    with pytest.raises(ValueError, match="--prefetch -1: must be >= 0"):
        ExtractOptions(prefetch=-1)


class FailingReader(VideoReader):
    """A reader whose decoder fails after `fail_after` frames, naming the file as VideoReader's errors do."""

    fail_after = 5

    def _frames(self, cap):
        for i, frame in enumerate(super()._frames(cap)):
            if i == self.fail_after:
                raise VideoError(f"{self.path}: decoding failed at frame {i} (test)")
            yield frame


def test_decode_error_is_the_same_with_prefetch_and_leaves_nothing(translating_video, tmp_path, monkeypatch):
    path, _ = translating_video(num_frames=12, height=32, width=40)
    monkeypatch.setattr(flow.extract, "VideoReader", FailingReader)
    threads = threading.active_count()
    errors = {}
    for prefetch in (0, 2):
        out = tmp_path / f"p{prefetch}"
        record = attempt(partial(extract_store, opts=_opts(prefetch=prefetch)), ("clip", path, out / "clip.h5"))
        assert record["status"] == "failed" and not list(out.iterdir())  # no store and no temporary file
        errors[prefetch] = record["error"]
        assert threading.active_count() == threads
    assert errors[0] == errors[2] == f"{path}: decoding failed at frame 5 (test)"  # a project error: its message
    with pytest.raises(VideoError) as info:  # the exception itself, not only its text, crosses the thread
        flow.extract._extract(path, tmp_path / "direct.h5", _opts(prefetch=2))
    assert str(path) in str(info.value)


class CountingReader(VideoReader):
    """Counts decoded frames and records whether the decoder was closed (its VideoCapture released)."""

    decoded, closed = 0, False

    def _frames(self, cap):
        try:
            for frame in super()._frames(cap):
                type(self).decoded += 1
                yield frame
        finally:
            type(self).closed = True


class FailingEngine:
    """Fails at its second call, once the decode thread has filled the queue and waits on it."""

    name, version, calls = "failing", "0", 0

    def calc_pairs(self, prev, nxt):
        self.calls += 1
        if self.calls == 2:
            # 5 frames consumed + prefetch 2 x batch 2 queued + 1 held by the blocked decoder
            deadline = time.monotonic() + 10
            while CountingReader.decoded < 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            raise RuntimeError(f"engine failed with the decoder {CountingReader.decoded} frames in")
        return np.zeros(prev.shape + (2,), np.float32)


def test_engine_error_stops_the_decoder_ahead_of_it(translating_video, tmp_path, monkeypatch):
    path, _ = translating_video(num_frames=30, height=32, width=40)
    monkeypatch.setattr(flow.extract, "VideoReader", CountingReader)
    threads = threading.active_count()
    for way in ("record", "raised"):
        engine = FailingEngine()  # the one engine of the process, as flow.stream.get_engine keeps it
        monkeypatch.setattr(flow.stream, "get_engine", lambda name, params, shape=None, engine=engine: engine)
        monkeypatch.setattr(CountingReader, "decoded", 0)
        monkeypatch.setattr(CountingReader, "closed", False)
        if way == "record":
            task = ("clip", path, tmp_path / "out" / "clip.h5")
            record = attempt(partial(extract_store, opts=_opts(prefetch=2)), task)
            error = record["error"]  # as the runner records it
        else:  # while the traceback (and with it _extract's frame) is alive: closing() must not wait for the GC
            with pytest.raises(RuntimeError) as info:
                flow.extract._extract(path, tmp_path / "out" / "clip.h5", _opts(prefetch=2))
            error = f"RuntimeError: {info.value}"
        assert error == "RuntimeError: engine failed with the decoder 10 frames in"  # it was ahead, and bounded
        assert CountingReader.closed and CountingReader.decoded < 30
        assert threading.active_count() == threads and not list((tmp_path / "out").iterdir())
