"""Column kinds and the model-ready encoding, decided from a sample of the source.
"""

from .._lazy import lazy_exports

__all__ = ["infer_schema", "InferredSchema", "ColumnReport", "SchemaError", "SampleFormatError", "Encoding"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "infer_schema": ".infer",
    "InferredSchema": ".infer",
    "ColumnReport": ".infer",
    "SchemaError": ".infer",
    "SampleFormatError": ".infer",
    "Encoding": ".encoding",
})
