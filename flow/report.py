"""The record of an extraction run: `OUT/report.json` (every video's outcome) and `OUT/index.csv` (the finished
stores), kept up to date while the run goes on, so that a run killed half way still says what it finished.

Both files are rewritten after each video (temporary file + `os.replace`, so a reader or a kill never sees half a
file). A rerun starts from what is there: its record of a video replaces the earlier one, and videos it does not
touch keep theirs (while their store exists), so the stores of a killed first run are listed again, as skipped.
On very large runs, where one rewrite takes more than 50 ms, a rewrite is skipped until ten times as long as the last
one took has passed (at most ~10% of one core goes to the record); the final write is never skipped.
"""

import csv
import io
import json
import time
from dataclasses import asdict
from pathlib import Path

from common.files import write_atomic


class RunReport:
    """OUT/report{suffix}.json and OUT/index{suffix}.csv of one run, merged with an earlier run's.

    Args:
        out: the output folder (created by the caller).
        options: the run's options (a dataclass), recorded in the report.
        suffix: "-shardIofN" for one shard of an array job, so that shards do not overwrite each other.
    """

    def __init__(self, out: str | Path, options, suffix: str = ""):
        self.out = Path(out)
        self.report_path = self.out / f"report{suffix}.json"
        self.index_path = self.out / f"index{suffix}.csv"
        self.options = options
        self.records: dict[str, dict] = _earlier_records(self.report_path, self.out)
        self.this_run: list[dict] = []
        self._start = time.perf_counter()
        self._last_end, self._last_seconds = 0.0, 0.0
        for stale in self.out.glob(".*.tmp-*"):  # a report or index left half-written by a killed rerun
            if stale.name.startswith((f".{self.report_path.name}.", f".{self.index_path.name}.")):
                stale.unlink(missing_ok=True)

    def add(self, record: dict) -> None:
        """Record one finished video and rewrite both files (unless rewriting is taking too long, see above)."""
        self.records[record["video_id"]] = record
        self.this_run.append(record)
        if self._last_seconds < 0.05 or time.perf_counter() - self._last_end >= 10 * self._last_seconds:
            self.write(complete=False)

    def write(self, complete: bool = True) -> dict:
        """Write both files now; returns the summary of this run (see `summarize`) with `report` and `index`."""
        start = time.perf_counter()
        summary = summarize(self.this_run, start - self._start)
        summary.update(complete=complete, listed=len(self.records), report=str(self.report_path),
                       index=str(self.index_path))  # fmt: skip
        records = sorted(self.records.values(), key=lambda r: r["video_id"])
        report = {"summary": summary, "options": asdict(self.options), "videos": records}
        write_atomic(self.report_path, lambda tmp: tmp.write_text(json.dumps(report, indent=1)))
        write_atomic(self.index_path, lambda tmp: tmp.write_text(index_csv(records), newline=""))  # csv's \r\n as given
        self._last_end = time.perf_counter()
        self._last_seconds = self._last_end - start
        return summary


def summarize(records: list[dict], seconds: float) -> dict:
    """Counts (done / skipped / failed / flagged), frames extracted and frames per second over the run."""
    count = {s: sum(r["status"] == s for r in records) for s in ("done", "skipped", "failed")}
    frames = sum(r["frames"] for r in records if r["status"] == "done")
    flagged = [r["video_id"] for r in records if r.get("truncated")]
    return {**count, "flagged": len(flagged), "flagged_videos": flagged, "frames": frames, "seconds": seconds,
            "frames_per_second": frames / seconds if seconds > 0 else 0.0}  # fmt: skip


def index_csv(records: list[dict]) -> str:
    """video_id, store (relative to OUT: `<video_id>.h5`), frames, fps, height, width of every good store."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["video_id", "store", "frames", "fps", "height", "width"])
    for r in records:
        if r["status"] in ("done", "skipped"):
            writer.writerow([r["video_id"], f"{r['video_id']}.h5", r["frames"], r["fps"], r["height"], r["width"]])
    return text.getvalue()


def _earlier_records(report_path: Path, out: Path) -> dict[str, dict]:
    """The records of an earlier run's report whose outcome still holds (a good store still there, or a failure)."""
    try:
        videos = json.loads(report_path.read_text())["videos"]
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or not ours: this run's records are all there is
        return {}
    if not isinstance(videos, list):
        return {}
    return {r["video_id"]: r for r in videos if isinstance(r, dict) and isinstance(r.get("video_id"), str)
            and (r.get("status") == "failed" or (out / f"{r['video_id']}.h5").is_file())}  # fmt: skip
