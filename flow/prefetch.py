"""Run an iterator a few items ahead in a background thread, so that producing the next items (decoding video
frames) overlaps with the caller's work on the current ones (TV-L1 on a GPU).

A thread is enough: OpenCV's decoding and colour conversion and torch's CUDA waits release the GIL.
"""

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def prefetch(items: Iterable[T], depth: int) -> Iterator[T]:
    """Yield the items of `items` in order, produced by a background thread at most `depth` items ahead.

    An exception raised while producing reaches the caller unchanged (same object, type and message) after the
    items produced before it. Closing the generator (wrap the caller's loop in `contextlib.closing`, so that an
    early stop or an error in the loop closes it at once) stops the thread and closes `items`' iterator before
    `close` returns. depth <= 0 iterates in the calling thread, with no thread at all.
    """
    if depth <= 0:
        yield from items
        return
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    thread = threading.Thread(target=_produce, args=(iter(items), slots, stop), name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        # A producer blocked on a full queue wakes up when we take an item; after `stop` it puts at most the one
        # item it already holds, which fits, then returns.
        with contextlib.suppress(queue.Empty):
            while True:
                slots.get_nowait()
        thread.join()


def _produce(it: Iterator, slots: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in it:
            if not _offer(slots, stop, (item, None)):
                return
        _offer(slots, stop, (_END, None))
    except BaseException as e:  # handed to the consumer, which re-raises it
        _offer(slots, stop, (_END, e))
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()  # a generator's `finally` (e.g. releasing a VideoCapture) runs here, in its own thread


def _offer(slots: queue.Queue, stop: threading.Event, entry: tuple) -> bool:
    """Put `entry` unless the consumer has stopped; checking first is what lets its one drain unblock us."""
    if stop.is_set():
        return False
    slots.put(entry)
    return True
