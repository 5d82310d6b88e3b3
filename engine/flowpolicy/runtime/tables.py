"""Reading the tables that drift compares: whole, or chunk by chunk.

A table is a mapping of column name to values, a 1-D array (one column ``"0"``), a 2-D array
(column ``"i"`` is ``data[:, i]``), a structured array (its fields) or a pandas DataFrame.
Chunked data (:func:`iter_chunks`) is any of those read in row slices (numpy memmaps are read
only slice by slice), an iterator or list of such tables, or the path of a Parquet file or a
directory of them (read in record batches with pyarrow, the ``parquet`` extra).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from flowpolicy.errors import FlowpolicyError

#: Rows per chunk when a table or a Parquet file is read in slices.
CHUNK_ROWS = 1 << 16


class DriftDataError(FlowpolicyError):
    """Drift cannot be computed from the data given: no numeric columns in common, a column
    that is empty (or only NaN), a declared column that is missing or not numeric."""


def is_path(data: Any) -> bool:
    return isinstance(data, (str, os.PathLike))


def is_table(data: Any) -> bool:
    """A whole table (not chunked data): a mapping of columns, an array or a DataFrame."""
    return isinstance(data, (Mapping, np.ndarray)) or _is_dataframe(data)


def iter_chunks(data: Any, rows: int = CHUNK_ROWS) -> Iterator[Any]:
    """The tables of ``data``, each of at most ``rows`` rows (see the module docstring)."""
    if is_path(data):
        yield from _parquet_chunks(Path(data), rows)
    elif is_table(data):
        size = _row_count(data)
        for start in range(0, max(size, 1), rows):
            yield _rows(data, start, start + rows)
    else:
        for part in data:
            if not is_table(part):
                raise DriftDataError(f"a chunk of the data is a {type(part).__name__}, not a "
                                     "table (a mapping of columns, an array or a DataFrame)")
            yield from iter_chunks(part, rows)


def columns(data: Any) -> dict[str, np.ndarray]:
    """Every one-dimensional column of a table, by name, numeric or not."""
    if isinstance(data, Mapping):
        items = data.items()
    elif _is_dataframe(data):
        return _dataframe_columns(data)
    else:
        array = np.asarray(data)
        if array.dtype.names:
            items = ((name, array[name]) for name in array.dtype.names)
        elif array.ndim == 1:
            items = [("0", array)]
        elif array.ndim == 2:
            items = ((str(i), array[:, i]) for i in range(array.shape[1]))
        else:
            raise DriftDataError(
                f"cannot read columns from a {array.ndim}-dimensional array; give a mapping "
                "of columns, a 2-D or structured array, or a pandas DataFrame"
            )
    found = {}
    for name, values in items:
        column = _one_dimensional(values)
        if column is not None:
            found[str(name)] = column
    return found


def numeric_columns(data: Any) -> dict[str, np.ndarray]:
    """The numeric one-dimensional columns of a table, by name; other columns are left out."""
    found = {}
    for name, values in columns(data).items():
        column = as_numeric(values)
        if column is not None:
            found[name] = column
    return found


def as_numeric(values: Any) -> np.ndarray | None:
    """``values`` as a 1-D numeric array, or None when it is not a numeric column."""
    array = np.asarray(values)
    if array.ndim != 1:
        return None
    if array.dtype.kind == "O":
        # Lists with None (missing) or mixed ints and floats arrive as objects; read them as
        # floats when every element is a real number or None. Strings never count as numbers.
        if not all(x is None or _is_real(x) for x in array):
            return None
        return np.array([math.nan if x is None else float(x) for x in array], dtype=np.float64)
    if array.dtype.kind == "b":
        return array.astype(np.uint8)
    if array.dtype.kind in "iuf":
        return array
    return None


def without_nan(values: np.ndarray) -> np.ndarray:
    # min() propagates NaN: one cheap pass tells whether a copy is needed at all.
    if values.dtype.kind == "f" and values.size and np.isnan(values.min()):
        return values[~np.isnan(values)]
    return values


def has_column(data: Any, name: str) -> bool:
    if _is_dataframe(data):
        return any(str(key) == name for key in data.columns)
    if isinstance(data, Mapping):
        return any(str(key) == name for key in data)
    names = getattr(getattr(data, "dtype", None), "names", None)
    return bool(names) and name in names


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _one_dimensional(values: Any) -> np.ndarray | None:
    array = values if isinstance(values, np.ndarray) else np.asarray(values)
    return array if array.ndim == 1 else None


def _is_dataframe(data: Any) -> bool:
    # Duck-typed so pandas is never imported unless the caller already uses it.
    module = type(data).__module__ or ""
    return module.startswith("pandas") and hasattr(data, "columns") and hasattr(data, "dtypes")


def _row_count(data: Any) -> int:
    if isinstance(data, Mapping):
        return max((len(values) for values in data.values()), default=0)
    return len(data)


def _rows(data: Any, start: int, stop: int) -> Any:
    if isinstance(data, Mapping):
        return {name: values[start:stop] for name, values in data.items()}
    if _is_dataframe(data):
        return data.iloc[start:stop]
    return data[start:stop]


def _dataframe_columns(frame: Any) -> dict[str, np.ndarray]:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    names = [str(name) for name in frame.columns]
    if len(set(names)) != len(names):
        raise DriftDataError(f"the DataFrame has duplicate column names: {names}")
    found = {}
    for position, name in enumerate(names):
        series = frame.iloc[:, position]
        if is_bool_dtype(series.dtype):
            found[name] = series.to_numpy(dtype=np.uint8, na_value=0)
        elif is_numeric_dtype(series.dtype) and series.dtype.kind != "c":
            # Nullable integer/float columns hold pd.NA: read them as NaN, which is dropped.
            found[name] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            found[name] = series.to_numpy(dtype=object)
    return found


def _parquet_chunks(path: Path, rows: int) -> Iterator[dict[str, np.ndarray]]:
    try:
        import pyarrow.parquet as parquet
    except ImportError as error:
        raise DriftDataError(f"reading {path} needs pyarrow: pip install "
                             "'flowpolicy[parquet]'") from error
    if path.is_dir():
        files = sorted(path.glob("*.parquet"))
        if not files:
            raise DriftDataError(f"{path} holds no *.parquet files")
    elif path.is_file():
        files = [path]
    else:
        raise DriftDataError(f"no such Parquet file or directory: {path}")
    for file in files:
        for batch in parquet.ParquetFile(file).iter_batches(batch_size=rows):
            yield {name: batch.column(i).to_numpy(zero_copy_only=False)
                   for i, name in enumerate(batch.schema.names)}
