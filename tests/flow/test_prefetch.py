import contextlib
import threading
import time

import pytest

from flow.prefetch import prefetch


def _wait_until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


class Source:
    """A generator source that counts what it produced, may fail after `fail_after` items, and records closing."""

    def __init__(self, n, fail_after=None):
        self.n, self.fail_after, self.produced, self.closed, self.thread = n, fail_after, 0, False, None

    def __iter__(self):
        self.thread = threading.current_thread()
        try:
            for i in range(self.n):
                if i == self.fail_after:
                    raise OSError(f"clip.avi: cannot decode frame {i}")
                self.produced += 1
                yield i * i
        finally:
            self.closed = True


@pytest.mark.parametrize("depth", [0, 1, 3, 100])
def test_same_items_in_order(depth):
    threads = threading.active_count()
    assert list(prefetch(Source(20), depth)) == [i * i for i in range(20)]
    assert list(prefetch([], depth)) == []
    assert threading.active_count() == threads


def test_depth_zero_runs_in_the_calling_thread_and_positive_depth_does_not():
    off, on = Source(3), Source(3)
    list(prefetch(off, 0))
    list(prefetch(on, 2))
    assert off.thread is threading.current_thread()
    assert on.thread is not threading.current_thread() and on.thread.name == "prefetch"


@pytest.mark.parametrize("depth", [0, 2])
def test_error_reaches_the_caller_unchanged_after_the_items_before_it(depth):
    threads = threading.active_count()
    source, got = Source(10, fail_after=4), []
    with pytest.raises(OSError) as info:
        for item in prefetch(source, depth):
            got.append(item)
    assert type(info.value) is OSError and str(info.value) == "clip.avi: cannot decode frame 4"
    assert got == [0, 1, 4, 9] and source.closed
    assert threading.active_count() == threads


def test_producer_stays_at_most_depth_items_ahead():
    source = Source(50)
    with contextlib.closing(prefetch(source, 3)) as items:
        assert next(items) == 0
        # 1 taken + 3 queued + 1 held by the producer, blocked on the full queue
        assert _wait_until(lambda: source.produced == 5)
        time.sleep(0.2)  # an unbounded producer would have run on to 50 meanwhile
        assert source.produced == 5
    assert source.closed


@pytest.mark.parametrize("taken", [0, 1, 7])
def test_closing_early_stops_the_thread_and_closes_the_source(taken):
    threads = threading.active_count()
    source = Source(1000)
    with contextlib.closing(prefetch(source, 2)) as items:
        for _, _ in zip(range(taken), items, strict=False):
            pass
        if taken:
            assert _wait_until(lambda: source.produced >= taken + 2)  # the producer is blocked on a full queue
    assert source.closed == bool(taken)  # never started: no thread, nothing to close
    assert source.produced < 1000 and threading.active_count() == threads


def test_error_in_the_consumer_loop_stops_the_thread():
    threads = threading.active_count()
    source = Source(1000)
    with pytest.raises(RuntimeError, match="engine failed"):
        with contextlib.closing(prefetch(source, 2)) as items:
            for item in items:
                if item == 9:
                    raise RuntimeError("engine failed")
    assert source.closed and threading.active_count() == threads
