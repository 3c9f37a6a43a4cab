"""The record of a per-video run: `OUT/report.json` (every video's outcome) and `OUT/index.csv` (the finished
videos), kept up to date while the run goes on, so that a run killed half way still says what it finished.

Both files are rewritten after each video (temporary file + `os.replace`, so a reader or a kill never sees half a
file). A rerun starts from what is there: its record of a video replaces the earlier one, and videos it does not
touch keep theirs while their outputs exist (or they had failed), so the outputs of a killed first run are listed
again, as skipped. On very large runs, where one rewrite takes more than 50 ms, a rewrite is skipped until ten times
as long as the last one took has passed (at most ~10% of one core goes to the record); the final write is never
skipped.

Every record has at least video_id, source, status ("done", "skipped", "failed", or a job's own such as
"no_face"), frames, seconds, warnings and error; a job adds its own fields.
"""

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path

from common.files import remove_temps, write_atomic


class RunRecord:
    """OUT/report{suffix}.json and OUT/index{suffix}.csv of one run, merged with an earlier run's.

    Args:
        out: the output folder (created by the caller).
        options: the job's options (a dataclass), recorded in the report.
        finished_file: the file under OUT whose presence says a video is finished (`v_1.h5`, `v_1.faces.json`):
            an earlier run's record of a video is kept while it exists.
        index_columns: the header of index.csv.
        index_row: a finished record's row of index.csv ({column: value}), or None for a video not listed there.
        summarize: the job's own summary fields over this run's records (clips written, features, ...).
        suffix: "-shardIofN" for one shard of an array job, so that shards do not overwrite each other.
    """

    def __init__(self, out: str | Path, options, *, finished_file: Callable[[str], str], index_columns: tuple[str, ...],
                 index_row: Callable[[dict], dict | None], summarize: Callable[[list[dict]], dict] | None = None,
                 suffix: str = ""):
        self.out = Path(out)
        self.report_path = self.out / f"report{suffix}.json"
        self.index_path = self.out / f"index{suffix}.csv"
        self.options, self.summarize = options, summarize
        self.index_columns, self.index_row = index_columns, index_row
        self.records: dict[str, dict] = _earlier_records(self.report_path, self.out, finished_file)
        self.this_run: list[dict] = []
        self._start = time.perf_counter()
        self._last_end, self._last_seconds = 0.0, 0.0
        for path in (self.report_path, self.index_path):  # left half-written by a killed rerun
            remove_temps(self.out, path.name)

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
        if self.summarize is not None:
            summary.update(self.summarize(self.this_run))
        summary.update(complete=complete, listed=len(self.records), report=str(self.report_path),
                       index=str(self.index_path))
        records = sorted(self.records.values(), key=lambda r: r["video_id"])
        options = asdict(self.options) if is_dataclass(self.options) else self.options
        report = {"summary": summary, "options": options, "videos": records}
        write_atomic(self.report_path, lambda tmp: tmp.write_text(json.dumps(report, indent=1, default=str)))
        index = index_csv(self.index_columns, [row for row in map(self.index_row, records) if row is not None])
        write_atomic(self.index_path, lambda tmp: tmp.write_text(index, newline=""))  # csv's \r\n as given
        self._last_end = time.perf_counter()
        self._last_seconds = self._last_end - start
        return summary


def summarize(records: list[dict], seconds: float) -> dict:
    """Counts per status (done, skipped and failed always), frames done and frames per second over the run."""
    statuses = ["done", "skipped", "failed", *sorted({r["status"] for r in records} - {"done", "skipped", "failed"})]
    count = {s: sum(r["status"] == s for r in records) for s in statuses}
    frames = sum(r.get("frames") or 0 for r in records if r["status"] == "done")
    return {**count, "frames": frames, "seconds": seconds, "frames_per_second": frames / seconds if seconds else 0.0}


def index_csv(columns: tuple[str, ...], rows: list[dict]) -> str:
    """The rows as CSV text under a header of `columns`."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _earlier_records(report_path: Path, out: Path, finished_file: Callable[[str], str]) -> dict[str, dict]:
    """The records of an earlier run's report whose outcome still holds (a finished video's file still there, or a
    failure)."""
    try:
        videos = json.loads(report_path.read_text())["videos"]
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or not ours: this run's records are all there is
        return {}
    if not isinstance(videos, list):
        return {}
    return {r["video_id"]: r for r in videos if isinstance(r, dict) and isinstance(r.get("video_id"), str)
            and (r.get("status") == "failed" or (out / finished_file(r["video_id"])).is_file())}
