"""The docs state what the code writes and what the benchmarks measured."""

import json
import re
from pathlib import Path

from questlearn.schema.encoding import Encoding

ROOT = Path(__file__).resolve().parents[2]


def test_shard_format_documents_every_encoding_field_and_the_missing_indicator_columns():
    text = (ROOT / "docs" / "shard-format.md").read_text(encoding="utf-8")
    section = text[text.index("`schema.encoding`:"):text.index("### `stats`")]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE))
    encoding = Encoding("mean", ["x"], [0.0], [], {}, indicators=["x"])
    assert set(encoding.as_record()) <= documented
    assert encoding.code_columns == ["x.missing"] and encoding.code_counts == [2]
    assert "`name.missing`" in text and "2 for a `name.missing` column" in section


def test_scaling_out_quotes_the_measured_fit_rate_of_the_default_model():
    measured = json.loads((ROOT / "benchmarks" / "results" / "fit_models.json").read_text())
    rate = measured["median_rows_per_second"]["default"]
    text = (ROOT / "docs" / "scaling-out.md").read_text(encoding="utf-8")
    assert f"`default` model at about {round(rate / 1000)} k rows/s" in text.replace("\n", " ")
    assert "fit_models.json" in text
