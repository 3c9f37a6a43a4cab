"""Index builders: (video_id, label) lists from each dataset's official split files, and the stores they point to.

Every builder returns `(pairs, classes)`: `pairs` a list of `(video_id, label)` with `label` an int index into
`classes`, the class names. A `video_id` is the video's path relative to the dataset root without its extension
(`ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01`), which is how `tools/extract_flow.py` names its stores:
`STORE_ROOT/<video_id>.h5` (see `store_path`).

Class ids are stable: UCF101 keeps the ids of its `classInd.txt`; every other builder sorts the class names, so the
same classes always get the same ids whatever order the files list them in.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from common.videos import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

ENTRY_EXTENSIONS = (*VIDEO_EXTENSIONS, ".h5")  # an index lists videos, or the stores made from them
# How the Kinetics download scripts (ActivityNet's Crawler/Kinetics) name a trimmed clip: label folder, then
# youtube id and the start and end seconds as 6-digit numbers, e.g. "abseiling/--0edUL8zmA_000014_000024".
KINETICS_ID_FORMAT = "{label}/{youtube_id}_{time_start:06d}_{time_end:06d}"

Pairs = list[tuple[str, int]]


def _read_lines(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"index file {path} not found; check the dataset's split folder")
    return [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]


def _strip_extension(name: str) -> str:
    path = Path(name)
    return str(path.with_suffix("")) if path.suffix.lower() in ENTRY_EXTENSIONS else name


def _check_subset(subset: str, allowed: Sequence[str], what: str) -> None:
    if subset not in allowed:
        raise ValueError(f"{what}: unknown subset {subset!r}; choose one of {tuple(allowed)}")


# ---------------------------------------------------------------- UCF101


def read_ucf101_classes(path: str | Path) -> list[str]:
    """Class names of UCF101's `classInd.txt` ("1 ApplyEyeMakeup" per line, ids from 1), ordered by id."""
    by_id = {}
    for number, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{path}:{number}: expected '<id> <ClassName>', got {line!r}")
        by_id[int(parts[0])] = parts[1]
    if sorted(by_id) != list(range(1, len(by_id) + 1)):
        raise ValueError(f"{path}: class ids must run 1..{len(by_id)} without gaps or repeats")
    return [by_id[i] for i in range(1, len(by_id) + 1)]


def ucf101_index(split_dir: str | Path, split: int = 1, subset: str = "train") -> tuple[Pairs, list[str]]:
    """UCF101 from its official split files `classInd.txt`, `trainlist0{split}.txt` and `testlist0{split}.txt`.

    Train lines carry a 1-based label ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"), test lines none: their
    label comes from the class folder. Labels are returned 0-based (classInd id - 1).
    """
    _check_subset(subset, ("train", "test"), "ucf101_index")
    split_dir = Path(split_dir)
    classes = read_ucf101_classes(split_dir / "classInd.txt")
    # Some UCF101 copies spell a folder with other capitals than classInd (HandstandPushups / HandStandPushups).
    by_name = {name.lower(): i for i, name in enumerate(classes)}
    list_path = split_dir / f"{subset}list0{split}.txt"
    pairs = []
    for number, line in enumerate(_read_lines(list_path), 1):
        parts = line.split()
        video, folder = parts[0], parts[0].split("/")[0]
        label = by_name.get(folder.lower())
        if "/" not in video or label is None:
            raise ValueError(f"{list_path}:{number}: {video!r} is not '<ClassName>/<video>' with a class of classInd")
        if len(parts) > 1 and parts[1] != str(label + 1):
            raise ValueError(f"{list_path}:{number}: label {parts[1]} != classInd id {label + 1} of {folder!r}")
        pairs.append((_strip_extension(video), label))
    return pairs, classes


# ---------------------------------------------------------------- HMDB51

HMDB51_SUBSETS = {"train": "1", "test": "2", "unused": "0"}


def hmdb51_index(split_dir: str | Path, split: int = 1, subset: str = "train") -> tuple[Pairs, list[str]]:
    """HMDB51 from its per-class split files `<class>_test_split{split}.txt`.

    Each line is "<video>.avi <k>" with k = 1 train, 2 test, 0 unused. `video_id` is "<class>/<video stem>", the
    layout of the unpacked HMDB51 rar files.
    """
    _check_subset(subset, tuple(HMDB51_SUBSETS), "hmdb51_index")
    split_dir = Path(split_dir)
    suffix = f"_test_split{split}.txt"
    files = sorted(split_dir.glob(f"*{suffix}"))
    if not files:
        raise FileNotFoundError(f"no '*{suffix}' files in {split_dir}; point to HMDB51's testTrainMulti_7030_splits")
    classes = sorted(path.name[: -len(suffix)] for path in files)
    pairs = []
    for label, name in enumerate(classes):
        list_path = split_dir / f"{name}{suffix}"
        for number, line in enumerate(_read_lines(list_path), 1):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in HMDB51_SUBSETS.values():
                raise ValueError(f"{list_path}:{number}: expected '<video>.avi <0|1|2>', got {line!r}")
            if parts[1] == HMDB51_SUBSETS[subset]:
                pairs.append((f"{name}/{_strip_extension(parts[0])}", label))
    return pairs, classes


# ---------------------------------------------------------------- CSV files


def _read_csv(path: str | Path, required: Sequence[str]) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"index file {path} not found")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [column for column in required if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; the header must name {list(required)}")
        return [{key: (value or "").strip() for key, value in row.items() if key is not None} for row in reader]


def _class_ids(labels: Iterable[str], classes: Sequence[str] | None, where: str) -> tuple[dict[str, int], list[str]]:
    """{class name: id} with ids sorted by name unless `classes` gives the order; unknown labels are an error."""
    labels = set(labels)
    classes = sorted(labels) if classes is None else list(classes)
    ids = {name: i for i, name in enumerate(classes)}
    unknown = sorted(labels - set(ids))
    if unknown:
        raise ValueError(f"{where}: {len(unknown)} label(s) not among the given classes, e.g. {unknown[:3]}")
    return ids, classes


def _filter_split(rows: list[dict[str, str]], subset: str | None, path: str | Path) -> list[dict[str, str]]:
    if subset is None:
        return rows
    if rows and "split" not in rows[0]:
        raise ValueError(f"{path} has no 'split' column; pass subset=None to take every row")
    kept = [row for row in rows if row["split"] == subset]
    if not kept:
        found = sorted({row["split"] for row in rows})
        raise ValueError(f"{path}: no rows with split {subset!r}; the file has {found}")
    return kept


def kinetics_index(
    csv_path: str | Path,
    subset: str | None = None,
    *,
    classes: Sequence[str] | None = None,
    id_format: str | Callable[[dict[str, str]], str] = KINETICS_ID_FORMAT,
) -> tuple[Pairs, list[str]]:
    """Kinetics from its CSV (`label,youtube_id,time_start,time_end,split`).

    Args:
        csv_path: the official train/validate/test CSV.
        subset: keep the rows whose `split` equals this ("train", "val", ...); None keeps all.
        classes: the class list (e.g. `i3d.inference.predict.read_label_map(kinetics400_label_map.txt)`); None
            sorts the labels of the whole file, so give it when a file may lack some classes (a partial download, a
            small val file).
        id_format: how videos are named under the dataset root. A format string over the CSV columns (times as
            ints) plus `label_` (the label with spaces as underscores); the default `KINETICS_ID_FORMAT` gives
            "abseiling/--0edUL8zmA_000014_000024". Or a function of the row returning the id.
    """
    rows = _read_csv(csv_path, ("label", "youtube_id", "time_start", "time_end"))
    ids, classes = _class_ids((row["label"] for row in rows), classes, str(csv_path))
    pairs = []
    for row in _filter_split(rows, subset, csv_path):
        if callable(id_format):
            video_id = id_format(row)
        else:
            fields = dict(row, label_=row["label"].replace(" ", "_"))
            fields["time_start"], fields["time_end"] = int(float(row["time_start"])), int(float(row["time_end"]))
            video_id = id_format.format(**fields)
        pairs.append((video_id, ids[row["label"]]))
    return pairs, classes


def csv_index(
    csv_path: str | Path, subset: str | None = None, *, classes: Sequence[str] | None = None
) -> tuple[Pairs, list[str]]:
    """A plain CSV with header `video_id,label[,split]`; labels are class names, ids sorted by name unless given."""
    rows = _read_csv(csv_path, ("video_id", "label"))
    ids, classes = _class_ids((row["label"] for row in rows), classes, str(csv_path))
    pairs = [(_strip_extension(row["video_id"]), ids[row["label"]]) for row in _filter_split(rows, subset, csv_path)]
    return pairs, classes


def folder_index(root: str | Path, extensions: Sequence[str] = ENTRY_EXTENSIONS) -> tuple[Pairs, list[str]]:
    """A folder-per-class tree `root/<class>/<video>.<ext>` (videos, or the `.h5` stores themselves).

    Every sub-folder of `root` is a class, even an empty one, so ids do not shift when a class has no videos yet.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} not found")
    classes = sorted(path.name for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} has no class sub-folders; expected {root}/<class>/<video>")
    suffixes = {ext.lower() for ext in extensions}
    pairs = [
        (f"{name}/{path.stem}", label)
        for label, name in enumerate(classes)
        for path in sorted((root / name).iterdir())
        if path.is_file() and path.suffix.lower() in suffixes
    ]
    return pairs, classes


# ---------------------------------------------------------------- stores


def store_path(store_root: str | Path, video_id: str) -> Path:
    """Where `tools/extract_flow.py` writes the store of `video_id`: `STORE_ROOT/<video_id>.h5`."""
    return Path(store_root) / f"{video_id}.h5"


def resolve_stores(
    store_root: str | Path, pairs: Sequence[tuple[str, int]], skip_missing: bool = False, *, with_video_id: bool = False
) -> list[tuple]:
    """Map `(video_id, label)` pairs to `(store_path, label)` items for `TwoStreamClipDataset`.

    Args:
        store_root: the `--out` folder of `tools/extract_flow.py`.
        pairs: from an index builder.
        skip_missing: drop (and log) videos without a store instead of raising.
        with_video_id: return `(store_path, label, video_id)` triples, so the dataset reports the index's ids.

    Raises:
        FileNotFoundError: some stores are missing (counted, the first few named) and `skip_missing` is False.
    """
    items, missing = [], []
    for video_id, label in pairs:
        path = store_path(store_root, video_id)
        if not path.is_file():
            missing.append(path)
        else:
            items.append((path, label, video_id) if with_video_id else (path, label))
    if missing:
        first = ", ".join(str(path) for path in missing[:5])
        message = f"{len(missing)} of {len(pairs)} stores missing under {store_root} (first: {first})"
        if not skip_missing:
            raise FileNotFoundError(f"{message}; run tools/extract_flow.py on them, or go on without them: "
                                    "--set data.skip_missing=true")
        log.warning("%s; skipping them", message)
    return items
