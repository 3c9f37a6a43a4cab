"""Offline TV-L1 optical flow extraction into per-video HDF5 stores."""
