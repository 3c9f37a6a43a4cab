"""TwoStreamClipDataset on real stores written by `flow.store_writer.write_store`: samples equal the stored frames."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from flow.store import FlowStoreError, VideoStore
from flow.store_writer import write_store
from i3d.data import TwoStreamClipDataset, worker_init_fn
from i3d.data import transforms as T
from tests.helpers import textured_frames

H, W, S = 36, 44, 24


def _write(path, num_frames=10, seed=0, with_flow=True):
    rgb = textured_frames(num_frames, H, W, dx=1.0, dy=0.5, seed=seed)
    rng = np.random.default_rng(seed)
    flow = rng.uniform(-25, 25, (num_frames, H, W, 2)).astype(np.float32) if with_flow else None
    return write_store(path, rgb, flow, {})


@pytest.fixture
def stores(tmp_path):
    """Three stores: 10, 5 (shorter than the clip) and 13 frames."""
    return [(_write(tmp_path / "c" / f"v{i}.h5", n, seed=i), i) for i, n in enumerate((10, 5, 13))]


def _expected(path, indices, y0, x0, flip=False):
    """What a sample must hold, computed straight from the store with the pure transforms."""
    indices = np.asarray(indices).reshape(-1)
    with VideoStore(path) as store:
        rgb = store.read_rgb(indices)[:, y0 : y0 + S, x0 : x0 + S]
        flow = store.read_flow(indices)[:, y0 : y0 + S, x0 : x0 + S]
    if flip:
        rgb, flow = rgb[:, :, ::-1], flow[:, :, ::-1] * np.array([-1, 1], np.float32)
    rgb = np.moveaxis(rgb.astype(np.float32) * np.float32(2 / 255) - 1, -1, 0)
    flow = np.moveaxis(np.clip(flow, -20, 20) / np.float32(20), -1, 0)
    return rgb, flow


def _draw(sample):
    return sample["indices"].tolist(), sample["crop"].tolist(), bool(sample["flip"])


def test_train_sample_equals_stored_frames(stores):
    ds = TwoStreamClipDataset(stores, num_frames=4, crop_size=S, train=True, seed=3)
    s = ds[0]
    assert s["rgb"].shape == (3, 4, S, S) and s["flow"].shape == (2, 4, S, S)
    assert s["rgb"].dtype == s["flow"].dtype == torch.float32
    assert s["indices"].dtype == torch.int64 and s["crop"].dtype == torch.int64
    assert (s["label"], s["video_id"], s["flip"]) == (0, "v0", False)
    start = int(s["indices"][0])
    assert s["indices"].tolist() == [start, start + 1, start + 2, start + 3] and 0 <= start <= 6
    y0, x0 = s["crop"].tolist()
    assert 0 <= y0 <= H - S and 0 <= x0 <= W - S
    rgb, flow = _expected(stores[0][0], s["indices"], y0, x0)
    np.testing.assert_allclose(s["rgb"].numpy(), rgb, atol=1e-6)
    np.testing.assert_array_equal(s["flow"].numpy(), flow)
    assert s["flow"].abs().max() == 1.0  # +-25 px flow is clipped at the 20 px bound


def test_short_video_loops_from_frame_zero(stores):
    ds = TwoStreamClipDataset(stores, num_frames=8, crop_size=S, train=True)
    s = ds[1]  # 5 frames
    assert s["indices"].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    rgb, flow = _expected(stores[1][0], s["indices"], *s["crop"].tolist())
    np.testing.assert_allclose(s["rgb"].numpy(), rgb, atol=1e-6)
    np.testing.assert_array_equal(s["flow"].numpy(), flow)
    torch.testing.assert_close(s["rgb"][:, 5], s["rgb"][:, 0], rtol=0, atol=0)


def test_draw_depends_only_on_seed_epoch_item(stores):
    ds = TwoStreamClipDataset(stores, num_frames=4, crop_size=S, seed=7, flip=True)
    twin = TwoStreamClipDataset(stores, num_frames=4, crop_size=S, seed=7, flip=True)
    by_epoch = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        twin.set_epoch(epoch)
        a, b = ds[2], twin[2]
        assert _draw(a) == _draw(b)
        torch.testing.assert_close(a["rgb"], b["rgb"], rtol=0, atol=0)
        by_epoch.append(_draw(a))
    assert len(set(map(str, by_epoch))) >= 4  # a new draw (nearly) every epoch
    ds.set_epoch(2)
    assert _draw(ds[2]) == by_epoch[2]  # going back to an epoch gives its draw back
    other_seed = TwoStreamClipDataset(stores, num_frames=4, crop_size=S, seed=8, flip=True)
    for epoch in range(6):
        other_seed.set_epoch(epoch)
        assert _draw(other_seed[2]) == _draw(other_seed[2])
    other_seed.set_epoch(2)
    assert [_draw(other_seed[i]) for i in (0, 2)] != [_draw(ds[i]) for i in (0, 2)]


def _loader_draws(ds, num_workers, epochs, persistent=False):
    init = worker_init_fn if num_workers else None
    loader = DataLoader(ds, batch_size=2, num_workers=num_workers, persistent_workers=persistent, worker_init_fn=init)
    draws = []
    for epoch in epochs:
        ds.set_epoch(epoch)
        for batch in loader:
            draws.append((batch["indices"].tolist(), batch["crop"].tolist(), batch["rgb"].sum().item()))
    return draws


def test_same_draws_with_0_and_2_workers(stores):
    ds = TwoStreamClipDataset(stores, num_frames=4, crop_size=S, seed=1)
    serial = _loader_draws(ds, 0, epochs=(0, 1))
    assert serial[:2] != serial[2:]  # epoch 1 differs from epoch 0
    assert _loader_draws(ds, 2, epochs=(0, 1)) == serial
    # persistent workers keep their dataset copy: set_epoch must still reach them
    assert _loader_draws(ds, 2, epochs=(0, 1), persistent=True) == serial


def test_distributed_shards_draw_what_the_whole_dataset_draws(stores):
    from torch.utils.data import DistributedSampler

    ds = TwoStreamClipDataset(stores * 2, num_frames=4, crop_size=S, seed=4, flip=True)
    ds.set_epoch(3)
    whole = {i: _draw(ds[i]) for i in range(len(ds))}
    seen = {}
    for rank in range(2):  # each rank's own dataset copy, as in DDP
        shard = TwoStreamClipDataset(stores * 2, num_frames=4, crop_size=S, seed=4, flip=True)
        sampler = DistributedSampler(shard, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(3)
        shard.set_epoch(3)
        seen.update({i: _draw(shard[i]) for i in sampler})
    assert seen == whole


def test_eval_center_crop_and_centre_frames(stores):
    ds = TwoStreamClipDataset(stores, num_frames=4, crop_size=S, train=False, seed=0)
    s = ds[2]  # 13 frames: the 4 around the centre are 4..7
    assert s["indices"].tolist() == [4, 5, 6, 7]
    assert s["crop"].tolist() == [(H - S) // 2, (W - S) // 2]
    rgb, flow = _expected(stores[2][0], s["indices"], (H - S) // 2, (W - S) // 2)
    np.testing.assert_allclose(s["rgb"].numpy(), rgb, atol=1e-6)
    np.testing.assert_array_equal(s["flow"].numpy(), flow)
    ds.set_epoch(5)
    assert _draw(ds[2]) == _draw(s)  # eval ignores the epoch
    assert ds[1]["indices"].tolist() == [0, 1, 2, 3]  # 5 frames: centre start (5 - 4) // 2 = 0


def test_eval_whole_video_and_multiple_clips(stores):
    whole = TwoStreamClipDataset(stores, num_frames=0, crop_size=S, train=False)
    assert whole[2]["indices"].tolist() == list(range(13)) and whole[2]["rgb"].shape == (3, 13, S, S)
    clips = TwoStreamClipDataset(stores, num_frames=4, crop_size=S, train=False, num_clips=3)
    s = clips[2]  # slack 9: starts 9 * (1, 3, 5) // 6 = 1, 4, 7
    assert s["rgb"].shape == (3, 3, 4, S, S) and s["flow"].shape == (3, 2, 4, S, S)
    assert s["indices"].tolist() == [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]]
    rgb, flow = _expected(stores[2][0], [7, 8, 9, 10], *s["crop"].tolist())
    np.testing.assert_array_equal(s["flow"][2].numpy(), flow)
    with pytest.raises(ValueError, match="eval-only"):
        TwoStreamClipDataset(stores, num_frames=4, crop_size=S, train=True, num_clips=3)


def test_flip_mirrors_rgb_and_negates_flow_x(stores):
    ds = TwoStreamClipDataset(stores, num_frames=3, crop_size=S, flip=True, seed=0)
    flags = []
    for epoch in range(12):
        ds.set_epoch(epoch)
        s = ds[0]
        flags.append(_draw(s)[2])
        rgb, flow = _expected(stores[0][0], s["indices"], *s["crop"].tolist(), flip=_draw(s)[2])
        np.testing.assert_allclose(s["rgb"].numpy(), rgb, atol=1e-6)
        np.testing.assert_array_equal(s["flow"].numpy(), flow)
    assert True in flags and False in flags
    flipped = next(e for e, f in enumerate(flags) if f)
    ds.set_epoch(flipped)
    s = ds[0]
    plain = TwoStreamClipDataset(stores, num_frames=3, crop_size=S, seed=0)
    plain.set_epoch(flipped)
    p = plain[0]
    assert _draw(p)[:2] == _draw(s)[:2]  # flipping does not change the indices or the crop
    torch.testing.assert_close(s["flow"][0], -p["flow"][0].flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(s["flow"][1], p["flow"][1].flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(s["rgb"], p["rgb"].flip(-1), rtol=0, atol=0)


def test_rgb_only_never_reads_flow(stores, tmp_path, monkeypatch):
    rgb_only_store = _write(tmp_path / "rgbonly.h5", 6, with_flow=False)

    def forbidden(self, indices):
        raise AssertionError(f"read_flow called on {self.path}")

    monkeypatch.setattr(VideoStore, "read_flow", forbidden)
    ds = TwoStreamClipDataset([*stores, (rgb_only_store, 4)], num_frames=4, crop_size=S, streams=("rgb",))
    for i in range(len(ds)):
        assert set(ds[i]) == {"rgb", "label", "indices", "crop", "flip", "video_id"}
    monkeypatch.undo()
    monkeypatch.setattr(VideoStore, "read_rgb", lambda self, indices: pytest.fail("read_rgb on a flow-only dataset"))
    flow_only = TwoStreamClipDataset(stores, num_frames=4, crop_size=S, streams=("flow",))
    assert flow_only[0]["flow"].shape == (2, 4, S, S) and "rgb" not in flow_only[0]


def test_normalization_kinds(stores):
    raw = TwoStreamClipDataset(stores, num_frames=2, crop_size=S, normalization="none")[0]["rgb"]
    assert raw.max() > 1.5 and raw.min() >= 0 and torch.equal(raw, raw.round())
    kin = TwoStreamClipDataset(stores, num_frames=2, crop_size=S, normalization="kinetics")[0]["rgb"]
    mean, std = torch.tensor(T.KINETICS_MEAN), torch.tensor(T.KINETICS_STD)
    torch.testing.assert_close(kin, (raw / 255 - mean[:, None, None, None]) / std[:, None, None, None])
    with pytest.raises(ValueError, match="'bgr'"):
        TwoStreamClipDataset(stores, normalization="bgr")
    with pytest.raises(ValueError, match="streams"):
        TwoStreamClipDataset(stores, streams=("depth",))


def test_compact_samples_expand_to_the_float_samples(stores):
    kw = dict(num_frames=4, crop_size=S, seed=2, flip=True, normalization="kinetics")
    full, compact = TwoStreamClipDataset(stores, **kw), TwoStreamClipDataset(stores, compact=True, **kw)
    raw = TwoStreamClipDataset(stores, **{**kw, "normalization": "none"})
    flips = []
    for epoch in range(3):
        for ds in (full, compact, raw):
            ds.set_epoch(epoch)
        for i in range(len(stores)):
            a, b = full[i], compact[i]
            assert b["rgb"].dtype == b["flow"].dtype == torch.uint8 and _draw(a) == _draw(b)
            assert b["rgb_table"].shape == (3, 256) and b["flow_table"].shape == (2, 256) and "rgb_table" not in a
            assert torch.equal(b["rgb"].float(), raw[i]["rgb"])
            c = T.expand_compact(b)
            assert torch.equal(c["rgb"], a["rgb"]) and torch.equal(c["flow"], a["flow"])
            flips.append(bool(b["flip"]))
    assert any(flips) and not all(flips)  # both mirrored and plain samples were compared


def test_errors_name_the_store(stores, tmp_path):
    missing = tmp_path / "gone" / "v9.h5"
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n garbage")
    no_flow = _write(tmp_path / "noflow.h5", 6, with_flow=False)
    for path in (missing, junk, no_flow):
        ds = TwoStreamClipDataset([(path, 0)], num_frames=4, crop_size=S)
        with pytest.raises(FlowStoreError, match=str(path)):
            ds[0]
    with pytest.raises(ValueError, match=rf"{stores[0][0]}: stored frames are {H}x{W}, smaller than crop_size=40"):
        TwoStreamClipDataset(stores, num_frames=4, crop_size=40)[0]


def test_video_id_from_items(stores):
    ds = TwoStreamClipDataset([(stores[0][0], 0, "class/v0")], num_frames=2, crop_size=S)
    assert ds[0]["video_id"] == "class/v0"
    with pytest.raises(ValueError, match="store_path, label"):
        TwoStreamClipDataset([(stores[0][0],)])


def test_on_stores_written_by_extract_flow(tmp_path, translating_video):
    """End to end: videos -> tools/extract_flow.py -> folder_index/resolve_stores -> samples; checks the flow's sign."""
    import subprocess
    import sys
    from pathlib import Path

    from i3d.data import folder_index, resolve_stores

    repo = Path(__file__).resolve().parents[3]
    translating_video("videos/right/a.avi", num_frames=12, height=40, width=52, dx=2.0, dy=1.0, seed=1)
    translating_video("videos/left/b.avi", num_frames=12, height=40, width=52, dx=-2.0, dy=0.0, seed=2)
    out = tmp_path / "stores"
    cmd = [sys.executable, str(repo / "tools" / "extract_flow.py"), "--videos", str(tmp_path / "videos"),
           "--out", str(out), "--short-side", "0", "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    pairs, classes = folder_index(tmp_path / "videos")
    assert classes == ["left", "right"] and pairs == [("left/b", 0), ("right/a", 1)]
    items = resolve_stores(out, pairs, with_video_id=True)
    assert [item[0] for item in items] == [out / "left" / "b.h5", out / "right" / "a.h5"]

    train = TwoStreamClipDataset(items, num_frames=6, crop_size=S, train=True, seed=5, flip=True)
    for epoch in range(3):
        train.set_epoch(epoch)
        for i, (path, label, video_id) in enumerate(items):
            s = train[i]
            assert (s["label"], s["video_id"]) == (label, video_id)
            rgb, flow = _expected(path, s["indices"], *s["crop"].tolist(), flip=bool(s["flip"]))
            np.testing.assert_allclose(s["rgb"].numpy(), rgb, atol=1e-6)
            np.testing.assert_array_equal(s["flow"].numpy(), flow)

    # eval: frames 3..8 of 12 (never the first, whose flow is 0 in either convention); texture moves right 2, down 1 px
    test = TwoStreamClipDataset(items, num_frames=6, crop_size=S, train=False)
    right, left = test[1]["flow"], test[0]["flow"]
    assert test[1]["indices"].tolist() == [3, 4, 5, 6, 7, 8]
    assert abs(right[0].median() - 2 / 20) < 0.03 and abs(right[1].median() - 1 / 20) < 0.03
    assert abs(left[0].median() + 2 / 20) < 0.03 and abs(left[1].median()) < 0.03


@pytest.mark.parametrize("compact", [False, True])
def test_gzip_and_lz4hc_stores_give_the_same_samples(tmp_path, compact):
    rgb = textured_frames(12, H, W, dx=1.0, dy=0.5)
    flow = np.random.default_rng(0).uniform(-25, 25, (12, H, W, 2)).astype(np.float32)
    old = write_store(tmp_path / "gzip.h5", rgb, flow, {}, compression="gzip")
    new = write_store(tmp_path / "lz4hc.h5", rgb, flow, {})
    kw = dict(num_frames=8, crop_size=S, flip=True, compact=compact)
    a, b = TwoStreamClipDataset([(old, 0)] * 6, **kw), TwoStreamClipDataset([(new, 0)] * 6, **kw)
    for i in range(6):
        for key in ("rgb", "flow", "indices", "crop"):
            torch.testing.assert_close(a[i][key], b[i][key], rtol=0, atol=0)
