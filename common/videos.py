"""Which videos a per-video job works on: files, folders, globs and lists expanded into (video_id, path), and the
shard of them one job of an array takes.

video_id is the path relative to a root without extension (`ClassA/v_1`): it names every output of the video
(`OUT/ClassA/v_1.h5`, `OUT/ClassA/v_1.faces.json`, `OUT/ClassA/v_1_rgb.npy`), so two jobs over the same videos agree.
"""

import glob
from pathlib import Path

VIDEO_EXTENSIONS = (
    ".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv", ".gif",
)


def find_videos(specs: list[str], root: str | Path | None = None) -> list[tuple[str, Path]]:
    """Expand files, folders (recursively, by video extension), globs and .txt lists into sorted (video_id, path).

    video_id is the path relative to `root` without extension; without `root`, relative to the folder given, to
    the glob's fixed prefix, to a list file's folder, or to a single file's own folder.
    """
    found: dict[str, Path] = {}
    for spec in specs:
        for base, path in _expand(spec, Path(root) if root else None):
            rel = path.resolve().relative_to(base.resolve()) if _is_under(path, base) else Path(path.name)
            video_id = rel.with_suffix("").as_posix()
            if video_id in found and found[video_id].resolve() != path.resolve():
                raise ValueError(f"two videos map to the id {video_id!r}: {found[video_id]} and {path}; "
                                 "rename one or pass --root so their relative paths differ")
            found[video_id] = path
    return sorted(found.items())


def find_run_videos(specs: list[str], root=None, overwrite: bool | tuple[str, ...] = False) -> list[tuple[str, Path]]:
    """`find_videos` for a run: no videos, or `--overwrite` ids that name none of them, are errors before any work."""
    videos = find_videos(specs, root)
    if not videos:
        raise FileNotFoundError(f"no videos found in {specs} (extensions: {', '.join(VIDEO_EXTENSIONS)})")
    if isinstance(overwrite, tuple):
        unknown = sorted(set(overwrite) - {video_id for video_id, _ in videos})
        if unknown:
            raise ValueError(f"--overwrite {' '.join(unknown)}: no such video id among the {len(videos)} videos "
                             f"found (ids are paths under the folder given, without extension, e.g. {videos[0][0]})")
    return videos


def _expand(spec: str, root: Path | None) -> list[tuple[Path, Path]]:
    path = Path(spec)
    if path.is_dir():
        base = root or path
        return [(base, p) for p in sorted(path.rglob("*")) if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()]
    if path.suffix.lower() == ".txt" and path.is_file():
        base = root or path.parent
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        return [(base, p if p.is_absolute() else base / p) for p in map(Path, lines)]
    if glob.has_magic(spec):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not matches:
            raise FileNotFoundError(f"--videos {spec!r} matches no file")
        fixed = Path(*_until_magic(Path(spec).parts)) if not root else root
        return [(fixed, p) for p in matches]
    if not path.exists():  # a typo on the command line stops the run before any work (a list's lines fail as jobs)
        raise FileNotFoundError(f"--videos {spec}: no such file or folder")
    return [(root or path.parent, path)]


def _until_magic(parts):
    for part in parts:
        if glob.has_magic(part):
            return
        yield part


def _is_under(path: Path, base: Path) -> bool:
    return path.resolve().is_relative_to(base.resolve())


def parse_shard(text: str) -> tuple[int, int]:
    """"I/N" (0 <= I < N) -> (I, N)."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard wants I/N such as 0/4, got {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text}: need 0 <= I < N (I counts from 0, e.g. $SLURM_ARRAY_TASK_ID)")
    return index, count


def select_shard(items: list, index: int, count: int) -> list:
    """The deterministic 1/count of the sorted `items` that shard `index` processes (every count-th item)."""
    return sorted(items)[index::count]


def shard_suffix(shard: tuple[int, int] | None) -> str:
    """"-shardIofN" for the record files of one shard (shards of an array job must not rewrite one file together)."""
    return f"-shard{shard[0]}of{shard[1]}" if shard else ""
