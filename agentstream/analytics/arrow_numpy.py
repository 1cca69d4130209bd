"""int64 Arrow arrays to and from numpy without pyarrow's conversions.

``pa.array`` of a numpy array looks for pandas first, and so does the first pyarrow scalar
a process builds (``fill_null(0)``, a compute call with a Python number): importing pandas
costs ~1 s of an export or a rollup run that never use it. These work on the buffers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["int64_array", "int64_values"]


def int64_values(arr: pa.Array) -> np.ndarray[Any, Any]:
    """The values of an int64 array as a zero-copy numpy view (NULL slots: whatever the
    buffer holds there; check ``arr.null_count``)."""
    return np.frombuffer(arr.buffers()[1], dtype=np.int64, count=len(arr), offset=8 * arr.offset)


def int64_array(values: np.ndarray[Any, Any]) -> pa.Array:
    """An int64 Arrow array (no NULLs) over ``values``' memory, made contiguous int64."""
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])
