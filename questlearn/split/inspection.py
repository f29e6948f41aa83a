"""``questlearn inspect``: what a split would make of a source, in seconds, writing nothing.

It reads the same spread sample as ``split`` (never the whole source) and
prints the files, the missing-value tokens, every column's inferred kind with
its evidence, any problem to settle first, and the first rows as questlearn
parses them.

Without a label (``label=None``, ``questlearn inspect`` without ``--label``)
every column is shown as a feature would be, and :func:`likely_labels`
names the columns that look like a label, each with its reason, and the
command to run next; when no column gives a reason, no label is guessed and
the report shows how to pass ``--label``.
"""

from __future__ import annotations

import re
import shlex

import pyarrow as pa
import pyarrow.compute as pc

from ..schema._columns import IDENTIFIER, NUMERIC, TEXT

# Names a label column often has (compared in lower case, ``-`` and spaces as ``_``). Not a bare ``y``: it is
# as often a coordinate or a size (the diamonds table's width in mm) as the target of an ``X, y`` export.
LABEL_NAMES = ("label", "labels", "target", "y_true", "class", "outcome", "cleared", "result", "response", "churn",
               "churned", "survived", "default", "fraud", "is_fraud", "converted", "clicked", "status")
LABEL_NAME_PATTERN = re.compile(r"^(is|has|was|did)_|^churn|_(label|target|class|outcome|flag)$")
MOST_SUGGESTED = 5


def inspect_source(source, *, rows: int = 5, print_to=print, storage_options: dict | None = None, **parameters):
    """Print what ``split`` would infer for ``source``; return the schema.

    Parameters
    ----------
    source
        As for :func:`questlearn.split.split_csv`.
    rows : int
        How many first rows to show, parsed.
    print_to : callable
        Where the report goes (``print`` by default).
    storage_options : dict, optional
        As for :func:`questlearn.split.split_csv`.
    **parameters
        The split's parameters that shape the schema: ``label`` (None: show
        every column and suggest likely labels), ``task``, ``na_values``,
        ``keep_default_na``, ``delimiter``, ``id_columns``,
        ``categorical_columns``, ``max_categories``, ``max_classes``, ``invalid``.

    Returns
    -------
    questlearn.schema.infer.InferredSchema
        With ``problems`` listed (not raised).
    """
    from ..io.sources import resolve_sources
    from ._params import SplitParameters
    from ._plan import read_columns, sample_schema

    for key in ("id_columns", "categorical_columns", "datetime_columns", "na_values"):
        if key in parameters:
            parameters[key] = tuple(parameters[key])
    params = SplitParameters(**parameters)
    reader, _ = read_columns(resolve_sources(source, storage_options), params)
    files = reader.files
    kinds = sorted({f.compression or "uncompressed" for f in files})
    print_to(f"questlearn: {len(files)} {reader.format.upper()} file(s), {reader.total_bytes / 1e6:.1f} MB on disk "
             f"({', '.join(kinds)}): {', '.join(f.name for f in files[:3])}{' ...' if len(files) > 3 else ''}")
    inferred = sample_schema(reader, params)
    print_to(inferred.describe(reader.missing_tokens(params.null_values)))
    if inferred.problems:
        print_to("problems to settle before splitting:\n  " + "\n  ".join(inferred.problems))
    print_to(f"first {rows} rows as parsed (· = missing):")
    print_to(_render(_parsed_rows(inferred, rows)))
    if params.label is None:
        print_to(_label_suggestion(likely_labels(inferred.columns, params.max_classes), source, params.max_classes))
    return inferred


def likely_labels(columns, max_classes: int = 50) -> list:
    """The columns that look like a label, most likely first, each ``(column report, reasons)``.

    A column is a candidate when its name is a usual label name
    (:data:`LABEL_NAMES`) or has a label's shape (``is_*``, ``has_*``,
    ``churn*``, ``*_label``, ``*_target``, ``*_flag``...), or when it holds
    two distinct values in the sample (a yes/no outcome); a two-valued
    last column (where many exports put the label) says so too. Being last
    is no reason by itself, nor is a name such as ``y`` or ``price``.
    Identifiers, free text and columns missing in every sampled row are
    never candidates. Name matches rank first, then two-valued columns.

    Parameters
    ----------
    columns : list of ColumnReport
        The sample's column reports (:class:`questlearn.schema.infer.InferredSchema`).
    max_classes : int
        Distinct values a classification label may have (a numeric column
        with more is suggested as a regression target).
    """
    candidates = []
    for position, column in enumerate(columns):
        if column.kind in (IDENTIFIER, TEXT) or column.distinct == 0:
            continue
        name = re.sub(r"[\s-]+", "_", column.name.strip().lower())
        reasons = []
        if name in LABEL_NAMES or LABEL_NAME_PATTERN.search(name):
            reasons.append("its name")
        if column.distinct == 2:
            reasons.append("2 values")
        if reasons and column.distinct == 2 and position == len(columns) - 1:
            reasons.append("the last column")
        if reasons:
            rank = (reasons[0] != "its name", -len(reasons), position)
            candidates.append((rank, column, reasons))
    return [(column, reasons) for _, column, reasons in sorted(candidates, key=lambda c: c[0])][:MOST_SUGGESTED]


def _label_suggestion(candidates: list, source, max_classes: int) -> str:
    """What ``inspect`` without ``--label`` prints last: the likely labels and the command to run next."""
    sources = " ".join(shlex.quote(str(s)) for s in (source if isinstance(source, (list, tuple)) else [source]))
    if not candidates:
        return ("no label was guessed: no column is named like one (label, target, class, outcome, churned, is_*...) "
                "or holds 2 values in the sample; name the column to predict: "
                f"questlearn inspect {sources} --label NAME (a number to predict: add --task regression)")
    shown = ", ".join(f"{column.name} ({', '.join(reasons)})" for column, reasons in candidates)
    best = candidates[0][0]
    task = " --task regression" if best.kind == NUMERIC and best.distinct > max_classes else ""
    return (f"likely label columns: {shown}\n"
            f"next: questlearn inspect {sources} --label {shlex.quote(best.name)}{task}   "
            f"(then: questlearn split {sources} OUTPUT_DIR --label {shlex.quote(best.name)}{task})")


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
