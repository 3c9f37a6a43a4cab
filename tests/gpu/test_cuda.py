"""What a CUDA machine must check; the CUDA cases skip, saying why, without one (CI has none), and the tests that
have a CPU case run it everywhere, so the code path the GPU takes is exercised by CI up to the device.

`python benchmarks/gpu_check.py` runs this file first on a lent GPU machine, then measures speed.
"""

import os

import numpy as np
import pytest
import torch

from tests.helpers import REPO, call_tool, free_port, write_motion_stores

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: run it on one through "
                                "benchmarks/gpu_check.py")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


def textured_pairs(n: int = 3, h: int = 48, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """n pairs of a smooth random texture moved by (1.5 + i/2, -1) px: real sub-pixel motion for TV-L1, different per
    pair (unlike conftest.textured_frames), so the pairs of one batch stop after different iteration counts."""
    import cv2

    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur((rng.random((h + 16, w + 16)) * 255).astype(np.float32), (0, 0), 2.0)
    prev, nxt = [], []
    for i in range(n):
        shift = np.float32([[1, 0, 1.5 + i / 2], [0, 1, -1.0]])
        moved = cv2.warpAffine(big, shift, (w + 16, h + 16), flags=cv2.INTER_CUBIC)
        prev.append(big[8 : 8 + h, 8 : 8 + w])
        nxt.append(moved[8 : 8 + h, 8 : 8 + w])
    return tuple(np.clip(np.stack(x), 0, 255).astype(np.uint8) for x in (prev, nxt))


def epe(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=-1).mean())


@needs_cuda
def test_torch_tvl1_on_cuda_is_as_close_to_opencv_as_on_the_cpu():
    """Compiled CUDA, eager CUDA and the CPU agree with OpenCV alike; batching on the GPU changes nothing."""
    from flow.engines import make_engine
    from flow.engines.torch_tvl1 import TorchTVL1

    prev, nxt = textured_pairs()
    reference = make_engine("opencv").calc_pairs(prev, nxt)
    cpu = TorchTVL1(device="cpu").calc_pairs(prev, nxt)
    compiled = TorchTVL1(device="cuda").calc_pairs(prev, nxt)
    eager = TorchTVL1(device="cuda", compile=False).calc_pairs(prev, nxt)
    one_by_one = TorchTVL1(device="cuda", batch_size=1).calc_pairs(prev, nxt)
    floor = max(epe(cpu, reference), 0.02)
    assert epe(compiled, reference) <= 2 * floor and epe(eager, reference) <= 2 * floor
    assert epe(one_by_one, compiled) < 0.02  # the masked stopping rule keeps each pair's own iteration count
    assert np.isfinite(compiled).all() and compiled.shape == prev.shape + (2,)


@needs_cuda
def test_expand_compact_on_cuda_equals_the_cpu():
    from i3d.data.transforms import expand_compact, flow_code_tables, rgb_table

    g = torch.Generator().manual_seed(0)
    flow_tables = np.stack([flow_code_tables(20.0, 20.0, flip) for flip in (False, True)])  # plain, mirrored
    batch = {"rgb": torch.randint(0, 256, (2, 3, 4, 8, 8), dtype=torch.uint8, generator=g),
             "flow": torch.randint(1, 256, (2, 2, 4, 8, 8), dtype=torch.uint8, generator=g),
             "flow_table": torch.from_numpy(flow_tables), "label": torch.tensor([0, 1])}
    for normalization in ("i3d", "imagenet", "kinetics"):
        batch["rgb_table"] = torch.from_numpy(rgb_table(normalization).T.copy()).expand(2, 3, 256)
        want = expand_compact(batch)
        got = expand_compact({k: v.cuda() for k, v in batch.items()})
        for key in ("rgb", "flow"):
            assert got[key].is_cuda and got[key].dtype == torch.float32
            assert torch.equal(got[key].cpu(), want[key])


@needs_cuda
def test_i3d_forward_on_cuda_matches_the_cpu():
    from i3d.models import InceptionI3d

    torch.manual_seed(0)
    model = InceptionI3d(num_classes=5).eval()
    x = torch.randn(1, 3, 16, 112, 112)
    with torch.no_grad():
        want = model(x)
        torch.backends.cudnn.allow_tf32, tf32 = False, torch.backends.cudnn.allow_tf32
        try:
            got = model.cuda()(x.cuda()).cpu()
        finally:
            torch.backends.cudnn.allow_tf32 = tf32
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()


# on the CPU both AMP settings train in float32 (with a warning): one case runs there, both on CUDA
@pytest.mark.parametrize("device, amp", [("cpu", "fp16"), pytest.param("cuda", "bf16", marks=needs_cuda),
                                         pytest.param("cuda", "fp16", marks=needs_cuda)])
def test_cli_trains_with_amp_and_the_checkpoint_loads_on_the_cpu(tmp_path, device, amp):
    """train_two_stream (AMP on CUDA; float32 with a warning on the CPU) -> a checkpoint that loads on the CPU ->
    eval.py."""
    # gzip stores: the GPU machine's image has no hdf5plugin, and its wheel (46 MB) would not travel there
    # beside OpenCV's contrib build (47 MB) within a loan's 64 MiB
    root = write_motion_stores(tmp_path / "data", compression="gzip")
    overrides = [f"data.index={root / 'index.csv'}", f"data.store_root={root / 'h5'}", f"train.device={device}",
                 f"train.amp={amp}", "train.epochs=1"]
    sets = [arg for value in overrides for arg in ("--set", value)]
    config = REPO / "configs" / "test_tiny.yaml"
    assert call_tool("train_two_stream", "--config", config, "--out", tmp_path / "run", *sets) == 0
    ckpt = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    assert all(np.isfinite(v) for row in ckpt["history"] for k, v in row.items() if k.startswith("train_loss"))
    out = tmp_path / "results.json"
    assert call_tool("eval", "--center-crop", "--checkpoint", tmp_path / "run" / "best.pt", "--out", out) == 0
    assert out.exists()


@pytest.mark.parametrize("device", DEVICES)
def test_one_process_ddp_step_equals_a_plain_step(device):
    """i3d.distributed's DDP wrapper and its reductions in the backend torchrun would pick (nccl on CUDA, gloo on the
    CPU): one step with world size 1 moves the weights as without DDP, and the epoch's sums reduce (NCCL takes
    CUDA tensors only; the epoch meter's are on the CPU)."""
    import torch.distributed as dist

    from i3d.build import build_model_from_config, build_optimizer
    from i3d.config import load_config
    from i3d.distributed import wrap_ddp
    from i3d.train import train_one_epoch

    # the Kinetics recipe's model on 8x112 clips: at test_tiny's 32 px the last batch norms see 1x1x1 maps of 2 clips,
    # where TF32 / cuDNN rounding is amplified to 0.18 after one step (seen on an H200); at 112 px DDP and the plain
    # step agreed to 8.6e-6 there (benchmarks/gpu_check.py, section ddp)
    cfg = load_config(REPO / "configs" / "kinetics400_i3d_two_stream.yaml",
                      [f"train.device={device}", "data.num_frames=8", "data.crop_size=112"])
    g = torch.Generator().manual_seed(1)
    batch = {"rgb": torch.randn(2, 3, 8, 112, 112, generator=g), "flow": torch.randn(2, 2, 8, 112, 112, generator=g),
             "label": torch.tensor([0, 1])}
    weights = []
    torch.manual_seed(0)
    initial = torch.cat([p.detach().flatten() for p in build_model_from_config(cfg).parameters()])
    for use_ddp in (False, True):
        torch.manual_seed(0)
        net = build_model_from_config(cfg).to(device)
        optimizer, scheduler = build_optimizer(cfg, net, 1)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        model, where = net, torch.device("cuda", 0) if device == "cuda" else torch.device("cpu")
        if use_ddp:
            env = dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE="1", RANK="0", LOCAL_RANK="0")
            os.environ.update(env)
            backend = "nccl" if device == "cuda" else "gloo"
            dist.init_process_group(backend, init_method="env://")  # i3d.distributed joins only for world > 1
            model = wrap_ddp(net, where, dropout_seed=0, resume=True)
        torch.manual_seed(7)  # the same dropout masks in both steps
        try:
            stats = train_one_epoch(model, [batch], optimizer, scheduler, scaler, cfg, epoch=0, step=0, device=where)
        finally:
            if use_ddp:
                dist.destroy_process_group()
                for key in env:
                    os.environ.pop(key)
        weights.append(torch.cat([p.detach().flatten().cpu() for p in net.parameters()]))
        assert stats["step"] == 1 and np.isfinite(stats["loss_rgb"])
    assert not torch.equal(weights[0], initial)  # the step moved the weights
    torch.testing.assert_close(weights[1], weights[0], rtol=0, atol=1e-4)
