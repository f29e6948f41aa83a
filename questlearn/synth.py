"""A synthetic quest log: realistic columns, a learnable label, any size.

One row per quest attempt. Rows are generated in fixed-size chunks from a
seeded generator and streamed to disk, so memory stays flat for any
``rows`` and the first N rows of a bigger log equal a log of N rows.

``nasty=True`` adds a free-text ``note`` column whose values exercise CSV
quoting (commas, doubled quotes, LF and CRLF inside quotes, non-ASCII
text) and starts the file with a UTF-8 byte-order mark. :func:`corrupt`
then breaks a copy in one of the ways the splitter must reject.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from .errors import OptionError

CHUNK_ROWS = 50_000
QUEST_TYPES = np.array(["fetch", "escort", "puzzle", "dungeon", "boss", "raid"])
QUEST_TYPE_EFFECT = np.array([0.9, 0.5, 0.1, -0.2, -0.7, -1.1])
TELEMETRY = [f"telemetry_{i:02d}" for i in range(20)]
NOTES = [
    "plain", "comma, inside", 'said "hi"', "two\nlines", "crlf\r\ninside", "naïve café ⚔", "", 'both, "and"\nmore',
]
CORRUPTIONS = ("ragged_row", "unterminated_quote", "bad_utf8", "missing_label_value", "not_a_number")


def _chunk(rng: np.random.Generator, first_id: int, rows: int, nasty: bool) -> pa.Table:
    level = rng.integers(1, 61, rows)
    difficulty = rng.integers(1, 11, rows)
    party = rng.integers(1, 6, rows)
    power = np.round(level * 12.5 + rng.normal(0, 60, rows), 1)
    quest = rng.integers(0, len(QUEST_TYPES), rows)
    stamina = np.round(rng.uniform(0, 100, rows), 1)
    stamina_missing = rng.random(rows) < 0.05
    telemetry = np.round(rng.normal(0, 1, (rows, len(TELEMETRY))), 4)
    logit = (
        0.06 * (level - 5.5 * difficulty)
        + 0.004 * (power - 12.5 * level)
        + 0.35 * (party - 3)
        + QUEST_TYPE_EFFECT[quest]
        + 0.012 * np.where(stamina_missing, 50, stamina - 50)
        + 0.8 * telemetry[:, 0] - 0.5 * telemetry[:, 1] + 0.3 * telemetry[:, 2] * telemetry[:, 3]
        + 0.4
    )
    cleared = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    columns = {
        "attempt_id": pa.array(np.arange(first_id, first_id + rows, dtype=np.int64)),
        "player_id": pa.array(rng.integers(1, 50_001, rows)),
        "quest_type": pa.array(QUEST_TYPES[quest]),
        "player_level": pa.array(level),
        "power": pa.array(power),
        "difficulty": pa.array(difficulty),
        "party_size": pa.array(party),
        "stamina": pa.array(stamina, mask=stamina_missing),
    }
    columns.update({name: pa.array(telemetry[:, i]) for i, name in enumerate(TELEMETRY)})
    if nasty:
        columns["note"] = pa.array([NOTES[i] for i in rng.integers(0, len(NOTES), rows)])
    columns["cleared"] = pa.array(cleared)
    return pa.table(columns)


def write_quest_log(path, rows: int, seed: int = 0, nasty: bool = False, progress: bool = False) -> Path:
    """Write a synthetic quest log CSV with ``rows`` data rows.

    Parameters
    ----------
    path : str or Path
        Output file.
    rows : int
        Number of data rows (quest attempts).
    seed : int
        Seed; the same seed and rows give the same bytes.
    nasty : bool
        Add a tricky free-text ``note`` column and a UTF-8 BOM.
    progress : bool
        Show a progress bar (rows written).

    Returns
    -------
    Path
        The written file.
    """
    if rows < 0:
        raise OptionError(f"rows must be non-negative, got {rows}")
    path = Path(path)
    rng = np.random.Generator(np.random.PCG64(seed))
    from tqdm import tqdm

    options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
    with open(path, "wb") as handle, tqdm(total=rows, unit="rows", unit_scale=True, desc="synth", disable=not progress) as bar:
        if nasty:
            handle.write(b"\xef\xbb\xbf")
        header_table = _chunk(np.random.Generator(np.random.PCG64(0)), 0, 1, nasty)
        handle.write((",".join(header_table.column_names) + "\n").encode())
        for first in range(0, rows, CHUNK_ROWS):
            table = _chunk(rng, first, min(CHUNK_ROWS, rows - first), nasty)
            sink = pa.BufferOutputStream()
            pa_csv.write_csv(table, sink, write_options=options)
            handle.write(sink.getvalue().to_pybytes())
            bar.update(table.num_rows)
    return path


def rows_for_megabytes(megabytes: float, nasty: bool = False) -> int:
    """Approximate number of rows that makes a log of ``megabytes`` MB."""
    return max(1, int(megabytes * 1e6 / (230 if nasty else 215)))


def corrupt(source, target, kind: str, row: int) -> tuple[int, int]:
    """Copy ``source`` to ``target`` with one defect at data row ``row``.

    Parameters
    ----------
    source, target : str or Path
        A quest log without ``nasty`` values, and where to write the copy.
    kind : str
        One of ``"ragged_row"`` (a field dropped), ``"unterminated_quote"``
        (a quote opened and never closed), ``"bad_utf8"`` (an invalid byte),
        ``"missing_label_value"`` (empty label) or ``"not_a_number"``.
    row : int
        0-based data row to break.

    Returns
    -------
    tuple of int
        ``(line, byte_offset)`` where the defect starts: what the error
        message must name.
    """
    if kind not in CORRUPTIONS:
        raise OptionError(f"kind must be one of {CORRUPTIONS}, got {kind!r}")
    lines = Path(source).read_bytes().split(b"\n")
    index = row + 1
    offset = sum(len(line) + 1 for line in lines[:index])
    fields = lines[index].split(b",")
    if kind == "ragged_row":
        fields.pop(3)
    elif kind == "unterminated_quote":
        fields[3] = b'"' + fields[3]
        offset += len(b",".join(fields[:3])) + 1
    elif kind == "bad_utf8":
        fields[3] = fields[3] + b"\xff"
        offset += len(b",".join(fields[:4])) - 1
    elif kind == "missing_label_value":
        fields[-1] = b""
    elif kind == "not_a_number":
        fields[3] = b"level-ten"
    lines[index] = b",".join(fields)
    Path(target).write_bytes(b"\n".join(lines))
    return index + 1, offset
