"""Two-stream Inception-3D: models, paired RGB/flow data pipeline, training and evaluation."""
