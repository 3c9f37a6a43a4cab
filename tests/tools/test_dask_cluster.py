"""tools/extract_flow.py on a real Dask cluster (`dask scheduler` + `dask worker` processes on 127.0.0.1, issue 17):
a worker SIGKILLed mid-run loses no video and leaves no partial store; a scheduler SIGKILLed mid-run ends the run
(exit 1, not a hang) and the rerun on a restarted scheduler resumes. benchmarks/rehearse_dask.py does the work (its
`--small` mode); every process it starts is SIGKILLed (by process group) when the cluster closes, failures included.
"""

import pytest

from common.files import process_alive
from tests.helpers import load_script


def test_killed_worker_and_killed_scheduler_lose_no_video(tmp_path):
    pytest.importorskip("distributed")
    rehearsal = load_script("benchmarks/rehearse_dask.py")
    videos = tmp_path / "videos"
    ids = rehearsal.write_moving_textures(videos, 12, frames=12, height=48, width=64)
    cluster = rehearsal.Cluster(tmp_path / "cluster", workers=2)
    try:
        cluster.__enter__()
    except rehearsal.ClusterUnavailable as e:
        pytest.skip(f"no Dask cluster on this machine: {e}")
    try:
        killed = rehearsal.worker_kill(tmp_path, cluster, videos, ids, 12, timeout=120)
        assert killed["rc"] == 0 and killed["problems"] == [], killed
        assert 0 < killed["stores_at_kill"] < len(ids)  # the kill came mid-run
        stopped = rehearsal.scheduler_kill(tmp_path, cluster, videos, ids, 12, timeout=120)
        assert stopped["rc_killed_run"] == 1 and stopped["problems"] == [], stopped
        assert stopped["resume"]["done"] > 0 and stopped["resume"]["failed"] == 0  # the rerun finished the rest
    finally:
        cluster.close()
    pids = [p.pid for p in cluster.processes]
    assert not [pid for pid in pids if process_alive(pid)], "a process of the cluster outlived close()"
