"""TensorFlow's checkpoint format read with numpy: TensorFlow-written bytes back bit for bit, crc32c, damaged files."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from tf_bundle_writer import write_bundle

from common.cli import run_tool
from i3d.models.tf_checkpoint import (
    TFCheckpointError,
    checkpoint_prefix,
    crc32c,
    masked_crc32c,
    read_index,
    read_tensors,
)

TF = Path(__file__).parent / "fixtures" / "tf"
SMALL = TF / "small.ckpt"  # written by TensorFlow 2.21 (fixtures/tf/make_tf_fixture.py)
DATA = "small.ckpt.data-00000-of-00001"


def _expected() -> dict[str, np.ndarray]:
    return {k.replace("|", "/"): v for k, v in np.load(TF / "small_expected.npz").items()}


def _bitwise_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_values_and_the_vectorised_path():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(bytes(32)) == 0x8A9136AA and crc32c(b"\xff" * 32) == 0x62A8AB43  # RFC 3720, B.4
    assert crc32c(b"") == 0
    rng = np.random.default_rng(0)
    for size in (4095, 4096, 4097, 20011):  # the lanes and their pairwise combination start at 4096 bytes
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert crc32c(data) == _bitwise_crc32c(data), size
    assert masked_crc32c(b"123456789") == (((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_tensorflow_written_checkpoint_reads_back_bit_for_bit():
    expected = _expected()
    bundle = read_index(SMALL)
    assert bundle.num_shards == 1 and not bundle.big_endian
    assert set(bundle.entries) == {*expected, "dtypes/string", "dtypes/bfloat16"}
    for path in (SMALL, TF / "small.ckpt.index", TF / DATA):  # the prefix, the index or the data file
        got = read_tensors(path, list(expected))
        for name, want in expected.items():
            assert got[name].dtype == want.dtype and got[name].shape == want.shape, name
            assert got[name].tobytes() == want.tobytes(), name
    assert read_tensors(SMALL, ["global_step"])["global_step"].shape == ()
    kernel = read_tensors(SMALL, ["RGB/inception_i3d/Mixed_3b/Branch_2/Conv3d_0a_1x1/conv_3d/w"])
    assert next(iter(kernel.values())).flags.writeable


def test_strings_and_bfloat16_are_listed_but_not_read():
    bundle = read_index(SMALL)
    assert bundle.entries["dtypes/string"].dtype == "" and bundle.entries["dtypes/bfloat16"].shape == (2,)
    with pytest.raises(TFCheckpointError, match=r"small.ckpt: tensor 'dtypes/string' holds string values"):
        read_tensors(SMALL, ["dtypes/string"])
    with pytest.raises(TFCheckpointError, match="bfloat16"):
        read_tensors(SMALL, ["dtypes/bfloat16"])
    with pytest.raises(TFCheckpointError, match="no tensor 'nope'"):
        read_tensors(SMALL, ["nope"])


def test_checkpoint_prefix_forms(tmp_path):
    assert checkpoint_prefix(SMALL) == SMALL
    assert checkpoint_prefix(TF / "small.ckpt.index") == SMALL
    assert checkpoint_prefix(TF / DATA) == SMALL
    assert checkpoint_prefix(TF / "other.ckpt") is None
    (tmp_path / "i3d-kinetics-400.ckpt").write_bytes(b"a pickle")  # a file named like a prefix is not one
    assert checkpoint_prefix(tmp_path / "i3d-kinetics-400.ckpt") is None


@pytest.fixture
def copy(tmp_path) -> Path:
    for name in ("small.ckpt.index", DATA):
        shutil.copy(TF / name, tmp_path / name)
    return tmp_path / "small.ckpt"


def test_truncated_data_file_names_the_file_and_the_tensor(copy):
    data = copy.with_name(DATA)
    data.write_bytes(data.read_bytes()[:13000])
    read_tensors(copy, ["RGB/inception_i3d/Mixed_3b/Branch_2/Conv3d_0a_1x1/conv_3d/w"])  # bytes 0-12288: whole
    with pytest.raises(TFCheckpointError, match=rf"{DATA}: truncated \(13000 bytes; tensor '.*Momentum' ends at "):
        read_tensors(copy)


def test_damaged_data_file_fails_its_checksum(copy):
    data = copy.with_name(DATA)
    raw = bytearray(data.read_bytes())
    raw[14340] ^= 0x01  # one bit of dtypes/float64
    data.write_bytes(bytes(raw))
    with pytest.raises(TFCheckpointError, match=rf"{DATA}: checksum mismatch for tensor 'dtypes/float64'"):
        read_tensors(copy)
    read_tensors(copy, ["dtypes/int32"])  # the others still read


def test_missing_data_file(copy):
    copy.with_name(DATA).unlink()
    with pytest.raises(TFCheckpointError, match=rf"{DATA} not found: a TensorFlow checkpoint is its .index file"):
        read_tensors(copy)


def test_damaged_or_foreign_index(copy):
    index = copy.with_name("small.ckpt.index")
    raw = index.read_bytes()
    index.write_bytes(raw[:-10])
    with pytest.raises(TFCheckpointError, match=r"small.ckpt.index: not a TensorFlow checkpoint index"):
        read_index(copy)
    index.write_bytes(raw[:20] + bytes([raw[20] ^ 0x40]) + raw[21:])
    with pytest.raises(TFCheckpointError, match=r"small.ckpt.index: checksum mismatch in the block at byte 0"):
        read_index(copy)
    with pytest.raises(TFCheckpointError, match=r"nothing.ckpt: no TensorFlow checkpoint there"):
        read_index(copy.with_name("nothing.ckpt"))


def test_tool_prints_one_line(copy, capsys):
    copy.with_name(DATA).write_bytes(b"")

    def main(args):
        read_tensors(args)

    assert run_tool(main, lambda argv: argv[0], [str(copy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {copy.with_name(DATA)}: truncated"), err


def test_our_writer_round_trips_for_the_other_tests(tmp_path):
    arrays = {"b": np.arange(6, dtype=np.float32).reshape(1, 2, 3), "a": np.array([True, False]), "c": np.int64(7)}
    prefix = write_bundle(tmp_path / "w" / "model.ckpt", arrays)
    got = read_tensors(prefix)
    assert list(read_index(prefix).entries) == ["a", "b", "c"]
    assert all(np.array_equal(got[k], v) and got[k].dtype == np.asarray(v).dtype for k, v in arrays.items())
