"""A minimal writer of TensorFlow's checkpoint format, for tests that need a full-size checkpoint without TensorFlow.

It writes what i3d.models.tf_checkpoint reads (one data shard; the index as an SSTable of one data block, an index
block and a footer), not byte for byte what TensorFlow writes; fixtures/tf/small.ckpt, written by TensorFlow itself,
is what proves the reader on TensorFlow's own bytes.
"""

import struct
from pathlib import Path

import numpy as np

from i3d.models.tf_checkpoint import DTYPES, TABLE_MAGIC, masked_crc32c

DTYPE_IDS = {np.dtype(code).str: number for number, code in DTYPES.items()}


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out) + bytes([value])


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def _entry(array: np.ndarray, offset: int) -> bytes:
    """BundleEntryProto: dtype, shape, (shard 0), offset, size, masked crc32c (fixed32)."""
    shape = b"".join(_field(2, _field(1, n)) for n in array.shape)
    data = array.tobytes()
    crc = _varint(6 << 3 | 5) + struct.pack("<I", masked_crc32c(data))
    return _field(1, DTYPE_IDS[array.dtype.str]) + _field(2, shape) + _field(4, offset) + _field(5, len(data)) + crc


def _block(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """Entries that share no key prefix, one restart point, then the trailer (no compression, masked crc)."""
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in pairs)
    body += struct.pack("<II", 0, 1)
    return body + b"\0" + struct.pack("<I", masked_crc32c(body + b"\0"))


def write_bundle(prefix: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write `arrays` (little-endian numeric dtypes) as the checkpoint `prefix` (.index + .data-00000-of-00001)."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    pairs, offset = [(b"", _field(1, 1))], 0  # the header: num_shards = 1, little-endian
    with open(prefix.with_name(prefix.name + ".data-00000-of-00001"), "wb") as data:
        for name in sorted(arrays, key=str.encode):
            array = np.asarray(arrays[name])  # tobytes() is C order whatever the strides
            pairs.append((name.encode(), _entry(array, offset)))
            data.write(array.tobytes())
            offset += array.nbytes
    block = _block(pairs)
    index = _block([(pairs[-1][0], _varint(0) + _varint(len(block) - 5))])
    meta = _block([])
    footer = _varint(len(block) + len(index)) + _varint(len(meta) - 5) + _varint(len(block)) + _varint(len(index) - 5)
    footer = footer.ljust(40, b"\0") + struct.pack("<Q", TABLE_MAGIC)
    prefix.with_name(prefix.name + ".index").write_bytes(block + index + meta + footer)
    return prefix
