import csv
import json
import os

import h5py
import numpy as np
import pytest

from common.runner import run_job
from common.videos import find_videos
from flow.extract import ExtractOptions, extract_all, extract_store, flow_job
from flow.store import VideoStore
from flow.tvl1 import TVL1Params
from tests.helpers import psnr

NATIVE = ExtractOptions(short_side=0)  # tiny test videos stay at their own size


@pytest.mark.parametrize("dx, dy", [(2.0, 1.0), (-1.0, 3.0)])
def test_known_translation(translating_video, tmp_path, dx, dy):
    path, frames = translating_video(num_frames=6, height=64, width=80, dx=dx, dy=dy)
    record = extract_store("clip", path, tmp_path / "out" / "clip.h5", NATIVE)
    assert record["status"] == "done" and record["frames"] == 6, record
    with VideoStore(record["store"]) as store:
        flow = store.read_flow(range(6))
        assert (flow[0] == 0.0).all()  # backward convention: nothing moved into frame 0, stored exactly
        median = np.median(flow[1:, 8:-8, 8:-8].reshape(5, -1, 2), axis=1)
        np.testing.assert_allclose(median, np.tile([dx, dy], (5, 1)), atol=0.3)
        assert psnr(store.read_rgb(range(6)), frames) > 30
        attrs = store.attrs
    assert attrs["flow_convention"] == "backward" and attrs["engine"] == "opencv" and attrs["flow_bound"] == 20.0
    assert attrs["source_frame_indices"] == list(range(6)) and attrs["source_size"] == path.stat().st_size
    assert attrs["native_fps"] == attrs["sampled_fps"] == 25.0 and attrs["opencv_version"]
    assert TVL1Params.from_attrs(attrs) == TVL1Params()


def test_forward_convention(translating_video, tmp_path):
    path, _ = translating_video(num_frames=4, height=48, width=64, dx=2.0, dy=0.0)
    opts = ExtractOptions(short_side=0, convention="forward", tvl1=TVL1Params(nscales=3))
    record = extract_store("clip", path, tmp_path / "clip.h5", opts)
    with VideoStore(record["store"]) as store:
        flow = store.read_flow(range(4))
        assert store.attrs["flow_convention"] == "forward" and store.attrs["tvl1_nscales"] == 3
    assert (flow[-1] == 0.0).all()
    np.testing.assert_allclose(np.median(flow[:-1, 8:-8, 8:-8], axis=(1, 2)), [[2.0, 0.0]] * 3, atol=0.3)


def _dataset(translating_video, tmp_path, names=("a/x.avi", "a/y.avi", "b/z.avi")):
    root = tmp_path / "videos"
    for i, name in enumerate(names):
        path, _ = translating_video(name=f"videos/{name}", num_frames=3, height=32, width=40, seed=i)
    return root


def test_resume_skips_complete_stores_and_redoes_broken(translating_video, tmp_path):
    root = _dataset(translating_video, tmp_path)
    out = tmp_path / "out"
    records, summary = extract_all([str(root)], out, NATIVE, workers=2, progress=False)
    assert [r["video_id"] for r in records] == ["a/x", "a/y", "b/z"] and summary["done"] == 3
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*.h5")}
    (out / "b" / "z.h5").write_bytes(b"half a store")  # as if a copy was cut short
    (out / "b" / ".z.tmp-99999.h5").write_bytes(b"stale")  # left by a killed run
    records, summary = extract_all([str(root)], out, NATIVE, progress=False)
    assert (summary["done"], summary["skipped"], summary["failed"]) == (1, 2, 0)
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*.h5")}
    assert after["x.h5"] == before["x.h5"] and after["y.h5"] == before["y.h5"]  # not rewritten, not touched
    assert VideoStore(out / "b" / "z.h5").num_frames == 3
    assert not list(out.rglob(".*tmp*"))
    records, _ = extract_all([str(root)], out, ExtractOptions(short_side=0, convention="forward"), progress=False)
    assert all(r["status"] == "skipped" for r in records)
    assert "flow_convention 'backward' (asked 'forward')" in records[0]["warnings"][0]  # kept, but said so
    records, _ = extract_all([str(root)], out, ExtractOptions(short_side=0, jpeg_quality=80), progress=False)
    assert "jpeg_quality 95 (asked 80)" in records[0]["warnings"][0]  # the RGB a model trains on differs too
    _, summary = extract_all([str(root)], out, ExtractOptions(short_side=0, overwrite=True), progress=False)
    assert summary["done"] == 3 and (out / "a" / "x.h5").stat().st_ino != before["x.h5"][0]


def test_broken_file_is_reported_and_others_complete(translating_video, tmp_path):
    root = _dataset(translating_video, tmp_path, names=("good1.avi", "good2.avi"))
    (root / "broken.avi").write_bytes(b"RIFF garbage, not a video")
    out = tmp_path / "out"
    records, summary = extract_all([str(root)], out, NATIVE, progress=False)
    assert (summary["done"], summary["failed"]) == (2, 1)
    failed = [r for r in records if r["status"] == "failed"]
    assert failed[0]["video_id"] == "broken" and "broken.avi" in failed[0]["error"]
    assert not (out / "broken.h5").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["failed"] == 1 and len(report["videos"]) == 3
    rows = list(csv.DictReader(open(out / "index.csv")))
    assert [(r["video_id"], r["store"], r["frames"], r["height"], r["width"]) for r in rows] == [
        ("good1", "good1.h5", "3", "32", "40"), ("good2", "good2.h5", "3", "32", "40")]


def test_dask_backend_matches_local(translating_video, tmp_path):
    distributed = pytest.importorskip("distributed")
    root = _dataset(translating_video, tmp_path, names=("p.avi", "q.avi"))
    videos = find_videos([str(root)])
    tasks = lambda out: [(vid, src, out / f"{vid}.h5") for vid, src in videos]  # noqa: E731
    local, _ = run_job(flow_job(NATIVE), [tasks(tmp_path / "local")], tmp_path / "local", progress=False)
    loopback = dict(processes=False, protocol="tcp://", host="127.0.0.1", dashboard_address=None)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, **loopback) as cluster:
        remote, _ = run_job(flow_job(NATIVE), [tasks(tmp_path / "dask")], tmp_path / "dask", backend="dask",
                            scheduler=cluster.scheduler_address, progress=False)
    assert [r["status"] for r in local + remote] == ["done"] * 4
    for vid, _ in videos:
        with h5py.File(tmp_path / "local" / f"{vid}.h5") as a, h5py.File(tmp_path / "dask" / f"{vid}.h5") as b:
            np.testing.assert_array_equal(a["flow"][:], b["flow"][:])
            assert all(np.array_equal(x, y) for x, y in zip(a["rgb"][:], b["rgb"][:], strict=True))
            assert set(a.attrs) == set(b.attrs) and all(np.array_equal(a.attrs[k], b.attrs[k]) for k in a.attrs)
    with pytest.raises(ValueError, match="--scheduler"):
        run_job(flow_job(NATIVE), [tasks(tmp_path / "dask")], tmp_path / "dask", backend="dask")


def test_missing_file_fails_cleanly(tmp_path):
    from flow.video import VideoError

    with pytest.raises(VideoError, match="gone.mp4: no such file"):
        extract_store("gone", tmp_path / "gone.mp4", tmp_path / "out" / "gone.h5", NATIVE)
    assert not os.path.exists(tmp_path / "out")  # nothing written for a failed video


def test_pool_worker_gives_numba_its_share_of_the_cores(translating_video, tmp_path, numba_tvl1):
    numba = pytest.importorskip("numba")
    src, _ = translating_video(num_frames=3, height=32, width=40)
    before = numba.get_num_threads()
    try:
        opts = ExtractOptions(fps=0, short_side=0, engine="numba")
        record = extract_store("clip", src, tmp_path / "clip.h5", opts, threads=1)
        assert record["status"] == "done", record["error"]
        assert numba.get_num_threads() == 1  # 2 workers x all cores each would oversubscribe the machine
    finally:
        numba.set_num_threads(before)


def test_pool_gives_the_last_video_the_idle_cores(translating_video, tmp_path, numba_tvl1):
    """Through the runner's real loky workers (joblib's Parallel would cap NUMBA_NUM_THREADS at cores // workers)."""
    pytest.importorskip("numba")
    cores = os.cpu_count() or 1
    if cores < 2:
        pytest.skip("needs 2 cores")
    src, _ = translating_video(num_frames=3, height=32, width=40)
    tasks = [(f"v{i}", src, tmp_path / f"v{i}.h5") for i in range(3)]
    job = flow_job(ExtractOptions(fps=0, short_side=0, engine="numba"))
    records, _ = run_job(job, [tasks], tmp_path, workers=2, progress=False)
    assert [r["status"] for r in records] == ["done"] * 3, records
    assert [r["threads"] for r in records] == [cores // 2, cores // 2, cores]  # v2 starts last: every core


def test_store_that_cannot_be_summarised_is_redone_not_dropped(translating_video, tmp_path):
    """A store that passes the resume check (attributes, shapes) but cannot be read for the index is extracted
    again with a warning, rather than becoming a failure that drops out of index.csv."""
    src, _ = translating_video(num_frames=3, height=24, width=32)
    dst = tmp_path / "out" / "clip.h5"
    assert extract_store("clip", src, dst, NATIVE)["status"] == "done"
    with h5py.File(dst, "a") as f:
        del f.attrs["height"]
    record = extract_store("clip", src, dst, NATIVE)
    assert record["status"] == "done"
    assert record["warnings"][0].endswith("cannot be read (KeyError: 'height'); extracted again")
    assert VideoStore(dst).height == 24


def test_a_store_does_not_depend_on_the_videos_its_worker_did_before(translating_video, tmp_path, monkeypatch):
    """OpenCV's TV-L1 object gives other flow for a frame size met after another size; the engine is rebuilt."""
    import flow.stream

    monkeypatch.setattr(flow.stream, "_ENGINES", {})
    big, _ = translating_video(name="big.avi", num_frames=3, height=48, width=64, seed=0)
    small, _ = translating_video(name="small.avi", num_frames=3, height=24, width=32, dx=3.0, seed=1)
    for name, src in (("first", big), ("small", small), ("again", big)):
        assert extract_store(name, src, tmp_path / f"{name}.h5", NATIVE)["status"] == "done"
    with h5py.File(tmp_path / "first.h5") as a, h5py.File(tmp_path / "again.h5") as b:
        np.testing.assert_array_equal(a["flow"][:], b["flow"][:])


def test_a_missing_video_path_on_the_command_line_is_an_error_up_front(tmp_path):
    with pytest.raises(FileNotFoundError, match="nonexist: no such file or folder"):
        find_videos([str(tmp_path / "nonexist")])
