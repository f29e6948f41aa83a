"""How the model takes each codes column (one-hot or an embedding), and the memory its embedding tables take.

Free of Keras, so the split prints the cost of the codes it plans beside its
schema, and training prints it again before it builds the model; both use
:func:`embedding_bytes`.
"""

from __future__ import annotations

from .._sizes import human_size

ONE_HOT_MAX_CODES = 32
EMBEDDING_MAX_SIZE = 50
FLOAT32_BYTES = 4


def embedding_size(codes: int) -> int:
    """Dimensions of the embedding of a column of ``codes`` codes: ``min(50, round(1.6 * codes ** 0.56))``."""
    return int(min(EMBEDDING_MAX_SIZE, max(2, round(1.6 * codes ** 0.56))))


def embedding_bytes(code_counts) -> int:
    """Bytes of the model's embedding tables: ``codes x embedding_size(codes) x 4`` summed over the codes
    columns the model embeds (more than :data:`ONE_HOT_MAX_CODES` codes; one-hot columns hold no weights)."""
    return sum(int(count) * embedding_size(count) * FLOAT32_BYTES
               for count in code_counts if count > ONE_HOT_MAX_CODES)


def describe_embeddings(code_counts) -> str:
    """One line: how many codes columns the model embeds and the bytes of their tables."""
    embedded = [int(count) for count in code_counts if count > ONE_HOT_MAX_CODES]
    if not code_counts:
        return "questlearn: embedding tables: none (no codes columns)"
    if not embedded:
        return (f"questlearn: embedding tables: none ({len(code_counts)} codes column(s), each of at most "
                f"{ONE_HOT_MAX_CODES} codes, enter one-hot)")
    return (f"questlearn: embedding tables: {len(embedded)} codes column(s) of {sum(embedded):,} codes in all take "
            f"{human_size(embedding_bytes(code_counts))} of float32 weights (codes x embedding width x 4 bytes; "
            "training keeps about 3 times that with the optimizer's moments)")
