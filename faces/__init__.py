"""Offline face cropping before flow extraction (DFDC): raw videos -> one face-crop video per person and segment.

The pipeline, one module per step: `faces.detect` (MTCNN on every 10th frame) -> `faces.track` (IoU linking,
interpolated boxes) -> `faces.crop` (segments, one box per clip, cutting) -> `faces.extract` (one video, many videos:
reuse of a real video's boxes for its fakes, processes, resume, report) with `faces.labels` (DFDC metadata.json in
and out). `tools/extract_faces.py` is the command line; `tools/extract_flow.py` then reads the clips.
"""
