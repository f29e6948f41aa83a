"""Score new rows with a trained model: ``questlearn predict MODEL_DIR INPUT OUTPUT.csv``.

:func:`predict_file` streams the input in blocks (memory is bounded by the
block size, never the file size) through ``MODEL_DIR/inference.keras`` and
writes one output row per input row, in input order: the id columns passed
through, ``p_<class>`` per class, ``predicted``, and the label when the
input has it. :func:`predict_frame` does the same for a pandas DataFrame or
a dict of columns.

The input is read by :func:`~questlearn.serve._input_rows.open_input` (a
DataFrame by :func:`~questlearn.serve._input_rows.read_frame`), with the
reader of its format (:mod:`questlearn.io.readers`, as ``split`` reads a
source). Numbers obey the split's rules
(:func:`questlearn.io._rowchecks.check_numbers`): an infinity, a value
float32 cannot hold, or NaN written as a value in a CSV stops with file,
line and byte (column and row for a DataFrame). The output is written under
a temporary name beside it and renamed once complete (the partial files
killed runs of the same output left are removed); an output that is one of
the inputs (the same file by any path or link) is refused
(:mod:`questlearn.serve._output_file`). Categories
training never saw, missing numbers and numbers beyond the range the split
saw (the model clips them to it) are counted per column and printed at the
end (:meth:`Predictor.input_notes`).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ..errors import InputFormatError, ModelFileError, OptionError, SchemaError
from ..io.csvscan import DEFAULT_BLOCK_SIZE
from ._input_rows import OffsetRows, open_input, read_frame
from ._model_files import INFERENCE_MODEL, INFERENCE_SPEC, load_model_files
from ._output_file import check_output, partial_file

CHUNK_ROWS = 8192  # rows per model call


class Predictor:
    """A loaded ``inference.keras`` with the description of its input.

    Parameters
    ----------
    model_dir : str or Path
        A directory written by :func:`questlearn.train._fit.train`.
    """

    def __init__(self, model_dir):
        from ..quiet import keras

        self.model_dir = Path(model_dir)
        spec_path, model_path = self.model_dir / INFERENCE_SPEC, self.model_dir / INFERENCE_MODEL
        if not spec_path.is_file() or not model_path.is_file():
            raise ModelFileError(f"{self.model_dir} holds no {INFERENCE_MODEL} / {INFERENCE_SPEC}: train a model with "
                             "`questlearn train` (this questlearn version) first")
        if keras.backend.backend() != "tensorflow":
            raise OptionError(f"{INFERENCE_MODEL} takes string columns, which need the TensorFlow backend; "
                             f"the Keras backend here is {keras.backend.backend()!r} (set KERAS_BACKEND=tensorflow)")
        self.spec, self.model = load_model_files(self.model_dir, INFERENCE_MODEL)  # checked, and checked to fit
        self.features = [f["name"] for f in self.spec["features"]]
        self.kinds = {f["name"]: f["kind"] for f in self.spec["features"]}
        self.classes = self.spec["classes"]
        self.regression = self.spec["task"] == "regression"
        self.vocabularies = {n: pa.array(self.spec["categories"][n], pa.string()) for n, k in self.kinds.items()
                             if k == "categorical"}
        self.unseen = Counter()  # per categorical feature: values not in its vocabulary (hashed), over every row scored
        self.missing = Counter()  # per numeric or datetime feature: missing values (filled as the split filled them)
        self.outside = Counter()  # per numeric or datetime feature: values beyond the training range (clipped to it)
        self.bounds = {n: np.asarray(b, np.float32) for n, b in self.spec.get("bounds", {}).items() if b is not None}

    def column_types(self, available) -> dict:
        """pyarrow types of the columns to read; a missing feature is an error."""
        missing = [f for f in self.features if f not in available]
        if missing:
            raise SchemaError(f"the input has no column {missing[0]!r}, a feature of the model in {self.model_dir} "
                             f"(missing: {missing}; the model's features: {self.features})")
        types = {n: pa.string() for n in self.spec["id_columns"] if n in available}
        types.update({n: pa.float64() if self.kinds[n] == "numeric" else pa.string() for n in self.features})
        if self.spec["label"] in available:
            types[self.spec["label"]] = pa.string()
        return types

    def output_columns(self, table: pa.Table) -> list[str]:
        """Names of the output's columns for input ``table``: ids, ``p_<class>``, ``predicted``, label."""
        ids = [n for n in self.spec["id_columns"] if n in table.column_names]
        scores = [] if self.regression else [f"p_{c}" for c in self.classes]
        label = [self.spec["label"]] if self.spec["label"] in table.column_names else []
        return ids + scores + ["predicted"] + label

    def model_inputs(self, table: pa.Table, rows=None) -> dict:
        """``{feature: (rows, 1) tensor}`` as ``inference.keras`` takes them.

        ``rows`` (a :class:`~questlearn.io._parse.Chunk` or
        :class:`~questlearn.serve._input_rows.FrameRows`)
        locates a datetime value the split's format cannot read.
        """
        from ..quiet import import_tensorflow
        from ..schema import datetimes

        tf = import_tensorflow()
        inputs = {}
        for name in self.features:
            column, kind = table[name], self.kinds[name]
            if kind == "numeric":
                values = column.to_numpy().astype(np.float32)
                self.missing[name] += int(np.isnan(values).sum())
                self.outside[name] += self.count_outside(name, values)
            elif kind == "datetime":
                values = self.seconds(name, column, rows)
                known = values[values != datetimes.MISSING_SECONDS]
                days = (known.astype(np.float64) / datetimes.SECONDS_PER_DAY).astype(np.float32)  # as the model does
                self.outside[name] += self.count_outside(f"{name}.days", days)
            else:
                strings = pc.fill_null(pc.cast(column, pa.string()), "")
                self.unseen[name] += int(pc.sum(pc.and_(pc.not_equal(strings, ""), pc.invert(
                    pc.is_in(strings, value_set=self.vocabularies[name])))).as_py() or 0)
                values = strings.to_numpy(zero_copy_only=False).astype(object)
            inputs[name] = tf.constant(values.reshape(-1, 1))
        return inputs

    def count_outside(self, column: str, values: np.ndarray) -> int:
        """How many of a numbers column's float32 ``values`` lie beyond the range the model clips it to."""
        if column not in self.bounds:  # no range recorded (an older split or model): the model does not clip it
            return 0
        low, high = self.bounds[column]
        return int(np.count_nonzero((values < low) | (values > high)))

    def input_notes(self) -> list[str]:
        """What the model made of the rows scored so far that training did not prepare it for, one line a column.

        A categorical value not in the training vocabulary (hashed into the
        column's out-of-vocabulary buckets, as the split does), a missing
        number or datetime (filled with the split's fill value), and a number
        or datetime beyond the range the split saw (the model clips it to the
        nearest end: it scores like the nearest value seen).
        """
        fill = {"mean": "the training mean", "zero": "0"}.get(self.spec.get("fill"), "the split's fill value")
        notes = []
        for name in self.features:
            if self.unseen[name]:
                notes.append(f"{name}: {self.unseen[name]} values not seen in training (hashed into its "
                             f"{self.spec['hash_buckets'][name]} out-of-vocabulary bucket(s), as the split does)")
            if self.missing[name]:
                value = self.spec["fill_values"].get(name if self.kinds[name] == "numeric" else f"{name}.days")
                marked = " and marked missing for the model" if f"{name}.missing" in self.spec["codes"] else ""
                what = "filled with" if self.kinds[name] == "numeric" else "their days filled with"
                notes.append(f"{name}: {self.missing[name]} missing, {what} {fill} ({value:.6g}){marked}")
            if self.outside[name]:
                low, high = self.bounds[name if self.kinds[name] == "numeric" else f"{name}.days"]
                unit = "" if self.kinds[name] == "numeric" else " (days since 1970)"
                notes.append(f"{name}: {self.outside[name]} values outside the training range [{low:.6g}, {high:.6g}]"
                             f"{unit}, scored as the nearest end of it")
        return notes

    def seconds(self, name: str, column, rows=None) -> np.ndarray:
        """A datetime column as ``inference.keras`` takes it: int64 wall-clock seconds since 1970, the missing
        ones ``MISSING_SECONDS`` (counted in :attr:`missing`); text is parsed with the split's format (a value it
        cannot read is refused)."""
        from ..schema import datetimes

        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            seconds, missing = datetimes.from_arrow(column)  # a timestamp or date column (a DataFrame's datetime64)
        else:
            fmt = datetimes.DatetimeFormat.from_record(self.spec["datetimes"][name])
            seconds, missing, bad = datetimes.parse(column, fmt)
            if bad is not None:
                problem = (f"column {name!r} holds {column[int(bad)].as_py()!r}, which is not a date or time like "
                           f"those the model was trained on ({fmt.name})")
                if rows is not None:
                    raise rows.error(int(bad), problem)
                raise InputFormatError(f"row {int(bad)}: {problem}")
        self.missing[name] += int(np.count_nonzero(missing))
        return np.where(missing, np.int64(datetimes.MISSING_SECONDS), seconds).astype(np.int64)

    def raw_outputs(self, table: pa.Table, rows=None) -> np.ndarray:
        """The model's output for every row of ``table``, in chunks."""
        parts = []
        for start in range(0, table.num_rows, CHUNK_ROWS):
            chunk = table.slice(start, CHUNK_ROWS)
            located = None if rows is None else OffsetRows(rows, start)
            parts.append(np.asarray(self.model.predict_on_batch(self.model_inputs(chunk, located)), np.float32))
        width = 1 if self.regression else len(self.classes)
        return np.concatenate(parts) if parts else np.empty((0, width), np.float32)

    def score(self, table: pa.Table, rows=None) -> pa.Table:
        """Output rows (ids, ``p_<class>``, ``predicted``, label) for ``table`` (``rows`` locates its errors)."""
        outputs = self.raw_outputs(table, rows)
        columns = {n: table[n] for n in self.spec["id_columns"] if n in table.column_names}
        if self.regression:
            columns["predicted"] = pa.array(outputs[:, 0])
        else:
            for position, name in enumerate(self.classes):
                columns[f"p_{name}"] = pa.array(outputs[:, position])
            columns["predicted"] = pa.array(np.asarray(self.classes, dtype=object)[outputs.argmax(axis=1)].tolist(), pa.string())
        if self.spec["label"] in table.column_names:
            columns[self.spec["label"]] = table[self.spec["label"]]
        return pa.table(columns)


def predict_file(model_dir, source, output, *, block_size: int = DEFAULT_BLOCK_SIZE, progress: bool = False,
                 storage_options: dict | None = None) -> int:
    """Score every row of ``source`` into the CSV file ``output``.

    Parameters
    ----------
    model_dir : str or Path
        A trained model directory (holds ``inference.keras``).
    source : str or Path
        The input (see :func:`~questlearn.serve._input_rows.open_input`):
        files, or an object store's URL.
    output : str or Path
        The CSV file to write; it appears only when every row is scored
        (written under a temporary name beside it, renamed at the end). It
        may not be a directory or one of the inputs.
    block_size : int
        Bytes of input per step (memory scales with this).
    progress : bool
        Show a progress bar (bytes of input).
    storage_options : dict, optional
        As for :func:`~questlearn.serve._input_rows.open_input`.

    Returns
    -------
    int
        Number of rows written.
    """
    from tqdm import tqdm

    output = Path(output)
    check_output(output, source, model_dir, storage_options)
    predictor = Predictor(model_dir)
    stream = open_input(source, predictor.spec["na_values"], block_size, predictor.spec.get("delimiter", ","),
                        storage_options)
    types = predictor.column_types(stream.names)
    rows, writer = 0, None
    with partial_file(output) as sink, tqdm(total=stream.total_bytes, unit="B", unit_scale=True, desc="predict",
                                            disable=not progress) as bar:
        for block in stream.blocks(types):
            scored = predictor.score(block.table, block.chunk)
            if writer is None:
                writer = pa_csv.CSVWriter(sink, scored.schema)
            writer.write_table(scored)
            rows += scored.num_rows
            bar.update(block.bytes_done - bar.n)
        if writer is None:  # a header and no rows: still a valid, empty result
            empty = predictor.score(pa.table({n: pa.array([], t) for n, t in types.items()}))
            writer = pa_csv.CSVWriter(sink, empty.schema)
        writer.close()
    for note in predictor.input_notes():
        print(f"predict: {note}", file=sys.stderr)
    return rows


def predict_frame(model_dir, data):
    """Score a pandas DataFrame or a dict of columns.

    Parameters
    ----------
    model_dir : str or Path or Predictor
        A trained model directory (or a loaded :class:`Predictor`).
    data : pandas.DataFrame or dict
        One entry per column. Missing values: ``None``/``NaN`` or one of the
        manifest's missing-value tokens. Datetime columns: text in the
        split's format, or pandas datetimes.

    Returns
    -------
    pandas.DataFrame or dict
        The same output columns as :func:`predict_file`: a DataFrame for a
        DataFrame input, else a dict of numpy arrays.

    Raises
    ------
    SchemaError, InputFormatError
        A missing feature column, a value that is not a number in a numeric
        feature, or one the split refuses (an infinity, beyond float32), a
        datetime the split's format cannot read, naming the column and the
        row (position and index label).
    """
    predictor = model_dir if isinstance(model_dir, Predictor) else Predictor(model_dir)
    columns, rows = read_frame(predictor, data)
    scored = predictor.score(columns, rows)
    if rows.index is not None:
        return scored.to_pandas()
    return {name: scored[name].to_numpy(zero_copy_only=False) for name in scored.column_names}


def inference_inputs(data, model_dir) -> dict:
    """The inputs ``inference.keras`` takes, from a DataFrame or dict of raw columns.

    ``keras.saving.load_model("MODEL_DIR/inference.keras").predict(inference_inputs(frame, "MODEL_DIR"))``
    gives what :func:`predict_frame` gives: Keras's ``predict`` refuses numpy
    string arrays, so categorical columns become string tensors, and datetime
    columns the int64 wall-clock seconds the model expands itself.

    Parameters
    ----------
    data : pandas.DataFrame or dict
        Raw columns, as for :func:`predict_frame`.
    model_dir : str or Path or Predictor
        A trained model directory.

    Returns
    -------
    dict
        ``{column: (rows, 1) tensor}``.
    """
    predictor = model_dir if isinstance(model_dir, Predictor) else Predictor(model_dir)
    columns, rows = read_frame(predictor, data)
    return predictor.model_inputs(columns, rows)
