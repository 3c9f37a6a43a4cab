"""Backbones (`InceptionI3d`) and two-stream fusion (`TwoStreamI3D`)."""

from i3d.models.inception import InceptionI3d
from i3d.models.two_stream import TwoStreamI3D

__all__ = ["InceptionI3d", "TwoStreamI3D"]
