"""``questlearn inspect``: what a split would make of a source, in seconds, writing nothing.

It reads the same spread sample as ``split`` (never the whole source) and
prints the files, the missing-value tokens, every column's inferred kind with
its evidence, any problem to settle first, and the first rows as questlearn
parses them.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .schema import NUMERIC


def inspect_source(source, *, rows: int = 5, print_to=print, **parameters):
    """Print what ``split`` would infer for ``source``; return the schema.

    Parameters
    ----------
    source
        As for :func:`questlearn.split.split_csv`.
    rows : int
        How many first rows to show, parsed.
    print_to : callable
        Where the report goes (``print`` by default).
    **parameters
        The split's parameters that shape the schema: ``label``, ``task``,
        ``na_values``, ``keep_default_na``, ``delimiter``, ``id_columns``,
        ``categorical_columns``, ``max_categories``, ``max_classes``.

    Returns
    -------
    questlearn.infer.InferredSchema
        With ``problems`` listed (not raised).
    """
    from .plan import read_columns, sample_schema
    from .sources import resolve_sources
    from .split import SplitParameters

    for key in ("id_columns", "categorical_columns", "na_values"):
        if key in parameters:
            parameters[key] = tuple(parameters[key])
    params = SplitParameters(**parameters)
    files = resolve_sources(source)
    read_columns(files, params)
    total = sum(f.bytes for f in files)
    kinds = sorted({f.compression or "uncompressed" for f in files})
    print_to(f"questlearn: {len(files)} {files[0].format.upper()} file(s), {total / 1e6:.1f} MB on disk "
             f"({', '.join(kinds)}): {', '.join(f.name for f in files[:3])}{' ...' if len(files) > 3 else ''}")
    inferred = sample_schema(files, params)
    print_to(inferred.describe(params.null_values if files[0].format == "csv" else None))
    if inferred.problems:
        print_to("problems to settle before splitting:\n  " + "\n  ".join(inferred.problems))
    print_to(f"first {rows} rows as parsed (· = missing):")
    print_to(_render(_parsed_rows(inferred, rows)))
    return inferred


def _parsed_rows(inferred, rows: int) -> pa.Table:
    head = inferred.sample.slice(0, rows)
    columns = {}
    for name in head.column_names:
        column = head[name]
        if inferred.kinds[name] == NUMERIC and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            try:
                column = pc.cast(pc.utf8_trim_whitespace(column), pa.float64())
            except pa.ArrowInvalid:
                pass  # a problem the report already names: show the text
        columns[name] = column
    return pa.table(columns)


def _render(table: pa.Table) -> str:
    names = table.column_names
    cells = [[("·" if v is None else str(v).replace("\n", "\\n"))[:18] for v in table[n].to_pylist()] for n in names]
    widths = [max([len(n)] + [len(c) for c in column]) for n, column in zip(names, cells)]
    lines = ["  " + "  ".join(n.ljust(w) for n, w in zip(names, widths))]
    for row in range(table.num_rows):
        lines.append("  " + "  ".join(column[row].ljust(w) for column, w in zip(cells, widths)))
    return "\n".join(lines)
