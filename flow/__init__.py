"""Offline TV-L1 optical flow extraction into per-video HDF5 stores.

The pipeline, one module per step: `flow.video` (decode, resample to 25 fps, resize the short side) ->
`flow.engines` (TV-L1: OpenCV's, or the numba/torch ports) with `flow.tvl1` (parameters, frame alignment) ->
`flow.stream` (frames -> aligned flow in bounded chunks; predict and the feature extractor use it too) ->
`flow.quantize` (8-bit flow, zero exact) -> `flow.store_writer` / `flow.store` (write / read `<video_id>.h5`) ->
`flow.extract` (many videos: joblib or Dask, shards, resume, report). `tools/extract_flow.py` is the command line.
"""
