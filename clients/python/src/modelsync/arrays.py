"""How a numpy array travels: its raw bytes, never a pickle, described by
three reserved metadata entries (ASCII values):

    modelsync.dtype   the dtype string with its byte order: b"<f4", b">f8", b"|i1"
    modelsync.shape   the shape as a JSON list: b"[3, 4]", b"[]" for a 0-d array
    modelsync.order   b"C" or b"F": the memory order the bytes are laid out in

Names starting with "modelsync." are reserved for the client: a push whose own
metadata uses one is refused. Object and structured dtypes are refused too
(the first would need pickle, the second is not described by a dtype string).
"""
from __future__ import annotations

import json
import math
from typing import Iterator, Mapping

import numpy as np

RESERVED_PREFIX = "modelsync."
DTYPE_KEY = "modelsync.dtype"
SHAPE_KEY = "modelsync.shape"
ORDER_KEY = "modelsync.order"


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise TypeError(f"dtype {dtype} holds Python objects, which only a pickle could carry")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise TypeError(f"dtype {dtype} is structured; only plain dtypes travel as arrays")


def memory_order(array: np.ndarray) -> str:
    """'F' for an array laid out in Fortran order (and not also in C order)."""
    flags = array.flags
    return "F" if flags.f_contiguous and not flags.c_contiguous else "C"


def metadata_for(array: np.ndarray) -> dict[str, bytes]:
    """The reserved metadata entries that describe `array`."""
    _check_dtype(array.dtype)
    return {
        DTYPE_KEY: array.dtype.str.encode("ascii"),
        SHAPE_KEY: json.dumps(list(array.shape)).encode("ascii"),
        ORDER_KEY: memory_order(array).encode("ascii"),
    }


def pieces(array: np.ndarray, size: int) -> Iterator[memoryview]:
    """The raw bytes of `array`, in its memory order, as views of at most
    `size` bytes. A contiguous array is never copied; any other array is
    copied a block of rows at a time, in C order."""
    if array.nbytes == 0:
        return
    order = memory_order(array)
    if array.flags.c_contiguous or array.flags.f_contiguous:
        flat = array.reshape(-1, order=order).view(np.uint8)
        view = memoryview(flat)
        for start in range(0, len(view), size):
            yield view[start:start + size]
        return
    # Not contiguous (a slice with steps, a transpose of a slice...): C order,
    # a few rows at a time so that no full copy is ever made.
    row_bytes = array[0].nbytes if array.shape[0] else 0
    rows = max(1, size // max(1, row_bytes))
    for first in range(0, array.shape[0], rows):
        block = np.ascontiguousarray(array[first:first + rows])
        yield from pieces(block, size)


def is_array(metadata: Mapping[str, bytes]) -> bool:
    """Whether a model's metadata says it was pushed as a numpy array."""
    return DTYPE_KEY in metadata


class ArrayBuilder:
    """Fills a preallocated array from the pieces of a pull, so that the
    array is the only full copy of the data in memory."""

    def __init__(self, metadata: Mapping[str, bytes], raw_size: int):
        try:
            dtype = np.dtype(metadata[DTYPE_KEY].decode("ascii"))
            shape = tuple(json.loads(metadata[SHAPE_KEY]))
            order = metadata.get(ORDER_KEY, b"C").decode("ascii")
        except (KeyError, ValueError, TypeError, UnicodeDecodeError) as e:
            raise ValueError(f"the array metadata is malformed: {e}") from None
        _check_dtype(dtype)
        if order not in ("C", "F") or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ValueError(f"the array metadata is malformed: shape {shape}, order {order!r}")
        expected = math.prod(shape) * dtype.itemsize
        if expected != raw_size:
            raise ValueError(
                f"an array of shape {shape} and dtype {dtype.str} takes {expected} bytes, "
                f"but the model holds {raw_size}"
            )
        self.buffer = np.empty(raw_size, dtype=np.uint8)
        self.array = np.ndarray(shape, dtype=dtype, buffer=self.buffer, order=order)
        self.filled = 0

    def write(self, piece: bytes) -> None:
        end = self.filled + len(piece)
        if end > len(self.buffer):
            raise ValueError(f"the model holds more than the {len(self.buffer)} bytes announced")
        self.buffer[self.filled:end] = np.frombuffer(piece, dtype=np.uint8)
        self.filled = end

    def finish(self) -> np.ndarray:
        if self.filled != len(self.buffer):
            raise ValueError(f"the model held {self.filled} bytes, not the {len(self.buffer)} announced")
        return self.array
