"""What every per-video job shares: video discovery, shards, the batch runner (local processes or Dask), atomic
files, the run record, progress, the one-line error convention, and DFDC metadata. Imports nothing of the project."""
