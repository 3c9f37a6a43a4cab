"""Inference from raw video files and stores: one model (`predict`), weighted ensembles of our checkpoints and of
foreign DFDC weight files by type (`ensemble`, `foreign`), and per-video I3D features (`features`, `feature_run`).

Our checkpoints bring their `InputSpec` (`i3d.checkpoint.model_from_checkpoint`); foreign files get their type's
(`foreign.foreign_spec`), weight files for features DeepMind's. Frames are decoded and flow computed as the training
stores were made (`flow.video`, `flow.engines`) and turned into input through `i3d.data.transforms.stream_input`,
the dataset's own path. Nothing here imports the training loop.
"""
