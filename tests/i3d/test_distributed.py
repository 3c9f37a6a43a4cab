"""i3d.distributed.setup_device outside a process group: the device and the CPU thread count a config asks for."""

import torch

from i3d.config import load_config
from i3d.distributed import setup_device


def test_cpu_threads_sets_torchs_threads_and_zero_keeps_its_default():
    before = torch.get_num_threads()
    try:
        device, rank, world = setup_device(load_config(None, ["train.device=cpu", "train.cpu_threads=1"]))
        assert (device.type, rank, world, torch.get_num_threads()) == ("cpu", 0, 1, 1)
        torch.set_num_threads(2)
        setup_device(load_config(None, ["train.device=cpu"]))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
