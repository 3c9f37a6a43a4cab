"""TensorFlow checkpoints (`tf.train.Saver` V2, `tf.train.Checkpoint`) read with numpy alone, no TensorFlow.

A checkpoint saved under the prefix `model.ckpt` is the files

* `model.ckpt.index`: an SSTable (LevelDB's table format, as tensorflow/core/lib/io writes it) whose keys are tensor
  names and whose values are BundleEntryProto messages (dtype, shape, shard, offset, size, masked crc32c); the empty
  key holds the BundleHeaderProto (number of shards, endianness);
* `model.ckpt.data-00000-of-00001` (one file per shard): each tensor's raw bytes, C order, at entry.offset.

Every index block and every tensor read is checked against its crc32c, as TensorFlow checks them, so a truncated
or damaged download is an error naming the file, never silently different weights. Partitioned (sliced) variables
and string tensors are not read: no image or video network we load has them.

    entries = read_index("rgb_imagenet/model.ckpt")            # {name: TensorEntry}, no tensor bytes read
    arrays = read_tensors("rgb_imagenet/model.ckpt.index")     # {name: np.ndarray}
"""

import functools
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from i3d.models.weights_io import WeightsError

TABLE_MAGIC = 0xDB4775248B80FB57  # the last 8 bytes of an SSTable
FOOTER_SIZE = 48  # two BlockHandles padded to 40 bytes, then the magic
# tensorflow/core/framework/types.proto DataType -> numpy (little-endian; a big-endian bundle is byte-swapped)
DTYPES = {
    1: "f4", 2: "f8", 3: "i4", 4: "u1", 5: "i2", 6: "i1", 8: "c8", 9: "i8", 10: "?", 17: "u2", 18: "c16", 19: "f2",
    22: "u4", 23: "u8",
}
DTYPE_NAMES = {7: "string", 14: "bfloat16", 20: "resource", 21: "variant"}  # the ones we do not read


class TFCheckpointError(WeightsError):
    """A TensorFlow checkpoint that is missing, truncated, damaged or of a kind we do not read; names the file."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the index: where its bytes are and what they hold."""

    name: str
    dtype: str  # numpy dtype string, "" for a dtype we do not read (see `dtype_id`)
    dtype_id: int  # TensorFlow's DataType number
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int  # masked, as stored
    sliced: bool  # a partitioned variable: its bytes are under other keys


# ---------------------------------------------------------------------------------------------------------- crc32c
_POLY = 0x82F63B78  # Castagnoli, bit-reversed


def _byte_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
    return table


_TABLE = _byte_table()
_TABLE_LIST = _TABLE.tolist()


def _tables(columns: np.ndarray) -> np.ndarray:
    """(4, 256) lookup tables of the GF(2)-linear map of 32-bit registers whose unit-vector images are `columns`:
    the map of x is the XOR of the tables of its four bytes."""
    out = np.zeros((4, 256), dtype=np.uint32)
    for byte in range(4):
        table = np.zeros(1, dtype=np.uint32)
        for bit in range(8):  # entries with this bit set = entries without it ^ the bit's image
            table = np.concatenate([table, table ^ columns[8 * byte + bit]])
        out[byte] = table
    return out


def _apply(tables: np.ndarray, x: np.ndarray) -> np.ndarray:
    return tables[0][x & 0xFF] ^ tables[1][(x >> 8) & 0xFF] ^ tables[2][(x >> 16) & 0xFF] ^ tables[3][x >> 24]


@functools.lru_cache(maxsize=64)
def _zeros_tables(length: int) -> np.ndarray:
    """Tables of Z_length, the map 'register -> register after `length` zero bytes' (length a power of two)."""
    units = np.uint32(1) << np.arange(32, dtype=np.uint32)
    if length == 1:
        return _tables(_TABLE[units & 0xFF] ^ (units >> 8))
    half = _zeros_tables(length // 2)
    return _tables(_apply(half, _apply(half, units)))  # Z_2n = Z_n after Z_n


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C (Castagnoli) of `data`, as TensorFlow's crc32c::Value; numpy-vectorised for large buffers.

    Large buffers are cut into lanes of 64-1024 bytes (at most about 64k lanes) whose CRCs are computed side by
    side, then combined pairwise: CRC(A + B) = Z_len(B)(CRC(A)) ^ CRC(B) for a CRC register started at zero, Z_n
    being the linear map 'feed n zero bytes'. Leading zero bytes leave such a register at zero, so the buffer is
    zero-padded in front (and a zero lane is put in front of an odd count); the standard initial value 0xFFFFFFFF
    is XORed into the first four real bytes instead (the same thing for a reflected CRC).
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size < 4096:
        crc = 0xFFFFFFFF
        for byte in raw.tobytes():
            crc = _TABLE_LIST[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF
    lane = min(1024, max(64, 1 << (raw.size >> 16).bit_length()))  # a power of two, for the cached Z tables
    pad = -raw.size % lane
    padded = np.zeros(pad + raw.size, dtype=np.uint8)
    padded[pad:] = raw
    padded[pad : pad + 4] ^= np.uint8(0xFF)
    crc = np.zeros(padded.size // lane, dtype=np.uint32)
    for row in np.ascontiguousarray(padded.reshape(-1, lane).T):  # one byte of every lane per row
        crc = _TABLE[(crc ^ row) & 0xFF] ^ (crc >> 8)
    length = lane
    while crc.size > 1:
        if crc.size % 2:
            crc = np.concatenate([np.zeros(1, dtype=np.uint32), crc])
        crc = _apply(_zeros_tables(length), crc[0::2]) ^ crc[1::2]
        length *= 2
    return int(crc[0]) ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """TensorFlow's stored form of a CRC (crc32c::Mask): rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ------------------------------------------------------------------------------------------------ protobuf wire
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the base-128 varint at `pos`; IndexError past the end."""
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(message: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of every field of a protobuf message: ints for varint/fixed fields, bytes otherwise."""
    out, pos = [], 0
    while pos < len(message):
        key, pos = _varint(message, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire in (1, 5):  # fixed64, fixed32
            width = 8 if wire == 1 else 4
            value, pos = int.from_bytes(message[pos : pos + width], "little"), pos + width
        elif wire == 2:
            length, pos = _varint(message, pos)
            value, pos = message[pos : pos + length], pos + length
        else:
            raise ValueError(f"wire type {wire} (groups are not used by checkpoint messages)")
        if pos > len(message):
            raise ValueError("message ends inside a field")
        out.append((number, value))
    return out


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _shape(message: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}."""
    dims = []
    for number, dim in _fields(message):
        if number == 2:
            dims.append(_int64(next((v for n, v in _fields(dim) if n == 1), 0)))
    return tuple(dims)


def _entry(name: str, message: bytes) -> TensorEntry:
    """BundleEntryProto: dtype 1, shape 2, shard_id 3, offset 4, size 5, crc32c 6 (fixed32), slices 7."""
    f = {1: 0, 2: b"", 3: 0, 4: 0, 5: 0, 6: 0}
    sliced = False
    for number, value in _fields(message):
        sliced |= number == 7
        f[number] = value
    return TensorEntry(name, DTYPES.get(f[1], ""), f[1], _shape(f[2]), f[3], f[4], f[5], f[6], sliced)


# ------------------------------------------------------------------------------------------------------ SSTable
def _block(table: bytes, handle: bytes, path: Path) -> bytes:
    """The contents of the block a BlockHandle (varint offset, varint size) points at, its trailer checked."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    end = offset + size + 5  # the trailer: compression type (1 byte) and masked crc32c (4 bytes)
    if end > len(table):
        raise TFCheckpointError(f"{path}: truncated ({len(table)} bytes, a block ends at byte {end}); re-download it")
    contents, kind = table[offset : offset + size], table[offset + size]
    (stored,) = struct.unpack_from("<I", table, offset + size + 1)
    if masked_crc32c(table[offset : offset + size + 1]) != stored:
        raise TFCheckpointError(f"{path}: checksum mismatch in the block at byte {offset} (damaged); re-download it")
    if kind != 0:  # TensorFlow writes bundle indexes uncompressed; 1 would be Snappy
        raise TFCheckpointError(f"{path}: block compression {kind} (only uncompressed TensorFlow bundles are read)")
    return contents


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs of a block: each entry stores the length of the prefix it shares with the previous key,
    then the rest of its key and its value; an array of restart offsets (uint32) and their count end the block."""
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit, pos, key, out = len(block) - 4 * (restarts + 1), 0, b"", []
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        out.append((key, block[pos : pos + length]))
        pos += length
    return out


def _table_entries(table: bytes, path: Path) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of an SSTable held in memory, in key order."""
    if len(table) < FOOTER_SIZE or struct.unpack_from("<Q", table, len(table) - 8)[0] != TABLE_MAGIC:
        raise TFCheckpointError(f"{path}: not a TensorFlow checkpoint index (no SSTable footer: truncated, or another "
                                "file); pass the checkpoint's prefix (model.ckpt) or its .index file")
    footer = table[-FOOTER_SIZE:]
    _, pos = _varint(footer, _varint(footer, 0)[1])  # skip the metaindex handle (offset, size)
    index = _block(table, footer[pos:], path)
    return [entry for _, handle in _block_entries(index) for entry in _block_entries(_block(table, handle, path))]


# ------------------------------------------------------------------------------------------------------- bundle
@dataclass(frozen=True)
class Bundle:
    """A checkpoint's index: its prefix, shard count, byte order and every tensor's entry (by name)."""

    prefix: Path
    num_shards: int
    big_endian: bool
    entries: dict[str, TensorEntry]

    def shard_path(self, shard: int) -> Path:
        return self.prefix.with_name(f"{self.prefix.name}.data-{shard:05d}-of-{self.num_shards:05d}")


def checkpoint_prefix(path: str | Path) -> Path | None:
    """`model.ckpt`, `model.ckpt.index` or `model.ckpt.data-00000-of-00001` -> `model.ckpt` when `model.ckpt.index`
    exists beside it; None for anything else (a plain file named model.ckpt is another format)."""
    path = Path(path)
    name = path.name
    if name.endswith(".index"):
        name = name[: -len(".index")]
    elif ".data-" in name and name.rsplit(".data-", 1)[1].replace("-of-", "").isdigit():
        name = name.rsplit(".data-", 1)[0]
    elif path.is_file():
        return None
    prefix = path.with_name(name)
    return prefix if prefix.with_name(name + ".index").is_file() else None


def read_index(path: str | Path) -> Bundle:
    """The index of the checkpoint at `path` (its prefix, .index or a data file); no tensor bytes are read.

    Raises:
        TFCheckpointError: no .index file there, or one that is truncated, damaged or not an SSTable.
    """
    prefix = checkpoint_prefix(path)
    if prefix is None:
        raise TFCheckpointError(f"{path}: no TensorFlow checkpoint there ({Path(path).name}.index not found); "
                                "pass the prefix it was saved under (model.ckpt) or its .index file")
    index = prefix.with_name(prefix.name + ".index")
    table = index.read_bytes()
    try:
        pairs = _table_entries(table, index)
        header = dict(_fields(pairs[0][1])) if pairs and pairs[0][0] == b"" else {}
        entries = {key.decode(): _entry(key.decode(), value) for key, value in pairs if key}
    except (IndexError, ValueError, struct.error) as e:  # a damaged block whose checksum still matched
        if isinstance(e, TFCheckpointError):
            raise
        raise TFCheckpointError(f"{index}: malformed checkpoint index ({type(e).__name__}: {e}); re-download it") from e
    if not header:
        raise TFCheckpointError(f"{index}: an SSTable without a bundle header; not a TensorFlow V2 checkpoint index")
    return Bundle(prefix, max(int(header.get(1, 1)), 1), header.get(2, 0) == 1, entries)


def _check_readable(bundle: Bundle, entry: TensorEntry) -> np.dtype:
    where = f"{bundle.prefix}: tensor {entry.name!r}"
    if entry.sliced:
        raise TFCheckpointError(f"{where} is a partitioned variable (saved in slices), which is not read here")
    if not entry.dtype:
        kind = DTYPE_NAMES.get(entry.dtype_id, f"DataType {entry.dtype_id}")
        raise TFCheckpointError(f"{where} holds {kind} values, which are not read here")
    dtype = np.dtype((">" if bundle.big_endian else "<") + entry.dtype)
    if int(np.prod(entry.shape, dtype=np.int64)) * dtype.itemsize != entry.size or min(entry.shape, default=0) < 0:
        raise TFCheckpointError(f"{where}: shape {entry.shape} of {entry.dtype} does not make its {entry.size} bytes; "
                                "the index is damaged")
    return dtype


def _read_tensor(bundle: Bundle, entry: TensorEntry, file, path: Path) -> np.ndarray:
    dtype = _check_readable(bundle, entry)
    file.seek(entry.offset)
    data = bytearray(entry.size)
    got = file.readinto(data)
    if got < entry.size:
        end, have = entry.offset + entry.size, path.stat().st_size
        raise TFCheckpointError(f"{path}: truncated ({have} bytes; tensor {entry.name!r} ends at byte {end}); "
                                "re-download it")
    if masked_crc32c(data) != entry.crc32c:
        raise TFCheckpointError(f"{path}: checksum mismatch for tensor {entry.name!r} (a damaged file, or not this "
                                f"index's data); re-download it")
    array = np.frombuffer(data, dtype=dtype).reshape(entry.shape)
    return array.astype(dtype.newbyteorder("=")) if bundle.big_endian else array


def read_tensors(path: str | Path | Bundle, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Tensors of a checkpoint as numpy arrays (writable, C order, native byte order), each checked by its crc32c.

    Args:
        path: the checkpoint's prefix, .index or a data file, or a `Bundle` from `read_index`.
        names: the tensors to read (default: all).

    Raises:
        TFCheckpointError: a name not in the checkpoint, a missing or truncated data file, a checksum mismatch, or a
            tensor kind not read here (strings, partitioned variables); the message names the file.
    """
    bundle = path if isinstance(path, Bundle) else read_index(path)
    names = list(bundle.entries) if names is None else names
    unknown = [n for n in names if n not in bundle.entries]
    if unknown:
        raise TFCheckpointError(f"{bundle.prefix}: no tensor {unknown[0]!r} in the checkpoint ({len(unknown)} "
                                "names missing)")
    out, files = {}, {}
    try:
        for name in sorted(names, key=lambda n: (bundle.entries[n].shard, bundle.entries[n].offset)):
            entry = bundle.entries[name]
            shard = bundle.shard_path(entry.shard)
            if entry.shard not in files:
                files[entry.shard] = _open_shard(shard)
            out[name] = _read_tensor(bundle, entry, files[entry.shard], shard)
    finally:
        for f in files.values():
            f.close()
    return {name: out[name] for name in names}


def _open_shard(path: Path):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise TFCheckpointError(f"{path} not found: a TensorFlow checkpoint is its .index file and its .data-* "
                                "file(s) side by side; copy or download the data file too") from None
