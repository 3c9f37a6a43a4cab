"""A run's progress: a bar on a terminal, and plain lines in a batch log.

On a terminal (stderr is a tty) one tqdm bar counts frames as workers write them, with "videos i/N" and failures
beside it. In a batch log (SLURM's output file, a pipe) carriage-return updates would be thousands of partial
lines, so a line is printed when a video finishes, at most one every `LOG_SECONDS`, and always for the last one:

    [flow] videos 12/480 (1 failed), 3,120 frames, 41.6 frames/s, 75 s
"""

import sys
import threading
import time

from tqdm import tqdm

LOG_SECONDS = 30.0


class RunProgress:
    """Frames and finished videos of one run. Thread-safe: frames arrive from a receiving thread (worker
    processes' counts), finished videos from the runner's loop.

    Args:
        name: the job ("flow", "faces", "features"), at the start of each log line.
        num_videos: how many videos this run will finish.
        enabled: False prints nothing.
        stream: where the bar or lines go (stderr by default); whether it is a tty decides which.
    """

    def __init__(self, name: str, num_videos: int, enabled: bool = True, stream=None):
        self.name, self.num_videos = name, num_videos
        self.videos, self.failed, self.frames = 0, 0, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._lock = threading.Lock()
        self._start = self._last_line = time.monotonic()
        self._bar = tqdm(unit=" frames", file=self.stream, postfix=self._postfix()) if self._tty else None

    def add_frames(self, frames: int) -> None:
        with self._lock:
            self.frames += frames
            if self._bar is not None:
                self._bar.update(frames)

    def add_video(self, failed: bool) -> None:
        with self._lock:
            self.videos += 1
            self.failed += failed
            if self._bar is not None:
                self._bar.set_postfix_str(self._postfix())
            elif self.enabled:
                now = time.monotonic()
                if now - self._last_line >= LOG_SECONDS or self.videos == self.num_videos:
                    self._last_line = now
                    print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float | None = None) -> str:
        seconds = (now or time.monotonic()) - self._start
        rate = self.frames / seconds if seconds > 0 else 0.0
        return (f"[{self.name}] {self._postfix()}, {self.frames:,} frames, {rate:.1f} frames/s, "
                f"{seconds:.0f} s")

    def _postfix(self) -> str:
        return f"videos {self.videos}/{self.num_videos}" + (f" ({self.failed} failed)" if self.failed else "")

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
