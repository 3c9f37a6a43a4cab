"""Inference from raw video files: one model (`predict`) or a weighted ensemble of checkpoints (`ensemble`).

Both read each model's `InputSpec` from its checkpoint (`i3d.checkpoint.model_from_checkpoint`), decode and compute
flow as the training stores were made (`flow.video`, `flow.engines`) and turn frames into input through
`i3d.data.transforms.stream_input`, the dataset's own path. Nothing here imports the training loop.
"""
