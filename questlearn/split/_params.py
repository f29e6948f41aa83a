"""The parameters that decide a split's output, validated and recorded in its manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import OptionError
from ..manifest._files import ALL_SUBSETS, SUBSETS
from ..schema._columns import CLASSIFICATION, TASKS, missing_tokens
from ._scatter import MAX_OPEN_SHARDS

FORMATS = ("csv", "npy")
DEFAULT_FORMATS = ("npy",)
# each out-of-vocabulary bucket is a row of the model's embedding table, used or not: 65,536 buckets of a
# column already hold 13 MB of weights, and values worth more buckets are worth a vocabulary (--max-categories)
MAX_HASH_BUCKETS = 65_536
SPLIT_BLOCK_SIZE = 8 * 1024 * 1024  # as fast as 16 MiB here, and half the memory held in the stages
INVALID_POLICIES = ("stop", "missing")  # a value a numeric or datetime column cannot read: stop, or read as missing


@dataclass(frozen=True)
class SplitParameters:
    """Everything that decides the output of a split (recorded in the manifest)."""

    rows_per_shard: int = 100_000
    val_fraction: float = 0.2
    seed: int = 0
    label: str = "cleared"
    id_columns: tuple = ()
    categorical_columns: tuple = ()
    datetime_columns: tuple = ()
    formats: tuple = DEFAULT_FORMATS
    block_size: int = SPLIT_BLOCK_SIZE
    max_categories: int = 100_000
    hash_buckets: int = 64
    na_values: tuple = ()
    keep_default_na: bool = True
    delimiter: str = ","
    task: str = CLASSIFICATION
    max_classes: int = 50
    fill: str = "mean"
    max_open_shards: int = MAX_OPEN_SHARDS
    drop_missing_labels: bool = False
    test_fraction: float = 0.0
    invalid: str = "stop"

    def __post_init__(self):
        if int(self.rows_per_shard) < 1:
            raise OptionError(f"rows_per_shard must be at least 1, got {self.rows_per_shard}")
        if not 0.0 <= float(self.val_fraction) < 1.0:
            raise OptionError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not float(self.test_fraction) >= 0.0 or not float(self.val_fraction) + float(self.test_fraction) < 1.0:
            raise OptionError(f"test_fraction must be at least 0 and val_fraction + test_fraction below 1 (rows are left "
                              f"for train), got val_fraction {self.val_fraction} and test_fraction {self.test_fraction} "
                              "(--val-fraction, --test-fraction)")
        if float(self.test_fraction) > 0 and float(self.val_fraction) == 0:
            raise OptionError(f"--test-fraction {self.test_fraction:g} with --val-fraction 0 would leave validate empty, "
                              "and training needs validate rows to pick its best epoch before evaluate scores the "
                              "test subset; give --val-fraction above 0 (e.g. 0.2), or drop --test-fraction")
        unknown = set(self.formats) - set(FORMATS)
        if unknown or not self.formats:
            raise OptionError(f"formats must be a non-empty subset of {FORMATS}, got {self.formats}")
        if self.block_size < 1024:
            raise OptionError(f"block_size must be at least 1024 bytes, got {self.block_size}")
        if self.task not in TASKS:
            raise OptionError(f"task must be one of {TASKS}, got {self.task!r}")
        if int(self.max_categories) < 1 or int(self.max_classes) < 2:
            raise OptionError(f"max_categories must be >= 1 and max_classes >= 2, got {self.max_categories}, {self.max_classes}")
        if not 1 <= int(self.hash_buckets) <= MAX_HASH_BUCKETS:
            raise OptionError(f"--hash-buckets must be between 1 and {MAX_HASH_BUCKETS:,}, got {self.hash_buckets:,}: "
                              "each bucket is a row of the model's embedding table (up to 200 bytes) whether or not "
                              "any value lands in it; keep the default 64, or raise --max-categories to keep more "
                              "values in the vocabulary")
        if self.fill not in ("mean", "zero"):
            raise OptionError(f"fill must be 'mean' or 'zero', got {self.fill!r}")
        if self.invalid not in INVALID_POLICIES:
            raise OptionError(f"invalid must be one of {INVALID_POLICIES} (--invalid), got {self.invalid!r}")
        if int(self.max_open_shards) < 1:
            raise OptionError(f"max_open_shards must be at least 1, got {self.max_open_shards}")

    def as_record(self) -> dict:
        record = asdict(self)
        for key in ("id_columns", "categorical_columns", "datetime_columns", "formats", "na_values"):
            record[key] = list(record[key])
        if not self.drop_missing_labels:  # recorded only when asked: splits made before the option still match
            del record["drop_missing_labels"]
        if not self.test_fraction:  # likewise: a split without a test subset is recorded as before the option
            del record["test_fraction"]
        if self.invalid == "stop":  # likewise: the default policy is recorded as before the option
            del record["invalid"]
        return record

    @property
    def subsets(self) -> tuple:
        """The subsets this split writes: train, validate, and test when ``test_fraction`` > 0."""
        return ALL_SUBSETS if self.test_fraction else SUBSETS

    def share(self, subset: str) -> float:
        """The expected share of the rows drawn into ``subset``."""
        if subset == "validate":
            return float(self.val_fraction)
        if subset == "test":
            return float(self.test_fraction)
        return 1.0 - float(self.val_fraction) - float(self.test_fraction)

    @property
    def null_values(self) -> list:
        return missing_tokens(self.na_values, self.keep_default_na)
