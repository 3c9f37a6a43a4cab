"""tools/extract_features.py under the faults every job of the batch runner must survive (tests/tools/job_faults.py)."""

import pytest
from job_faults import dask_worker_kill, full_disk, kill_ctrl_c_rerun, prepared


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    return prepared("features", tmp_path_factory)


def test_kill_9_then_ctrl_c_then_a_rerun_finishes_with_equal_outputs(job, tmp_path):
    kill_ctrl_c_rerun(job, tmp_path)


def test_a_full_disk_stops_the_run_with_one_line(job, small_disk, tmp_path):  # small_disk: conftest
    full_disk(job, small_disk, tmp_path)


def test_a_killed_dask_worker_loses_nothing(job, tmp_path):
    dask_worker_kill(job, tmp_path)
