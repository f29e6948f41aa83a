"""predict and evaluate read every source kind split reads; out-of-vocabulary columns and regression models."""

import gzip
import json
import zipfile

import numpy as np
import pandas as pd
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from splits import model_ready_split

from questlearn.data.dataset import QuestSequence
from questlearn.schema.encoding import DEFAULT_HASH_BUCKETS, fingerprint_buckets
from questlearn.serve.evaluate import evaluate
from questlearn.serve.predict import predict_file, predict_frame
from questlearn.synth import write_quest_log
from questlearn.train._fit import train


@pytest.fixture(scope="module")
def trained(small_model):
    return small_model


@pytest.fixture(scope="module")
def new_rows(tmp_path_factory):
    """3,000 unseen rows as a plain CSV, a gzip copy, three part files, a zip of them, and Parquet."""
    root = tmp_path_factory.mktemp("new_rows")
    plain = write_quest_log(root / "new.csv", rows=3000, seed=31)
    packed = root / "new.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    lines = plain.read_bytes().splitlines(keepends=True)
    parts = root / "parts"
    parts.mkdir()
    for index, start in enumerate(range(1, len(lines), 1000)):
        (parts / f"part-{index:05d}.csv").write_bytes(lines[0] + b"".join(lines[start:start + 1000]))
    (parts / "_SUCCESS").write_bytes(b"")
    zipped = root / "parts.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        for part in sorted(parts.glob("part-*.csv"), reverse=True):  # read in member-name order all the same
            archive.write(part, f"parts/{part.name}")
    parquet = root / "new.parquet"
    pq.write_table(pa_csv.read_csv(plain), parquet, row_group_size=700)
    return {"plain": plain, "gzip": packed, "parts": parts, "zip": zipped, "parquet": parquet}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", ["gzip", "parts", "zip", "parquet"])
def test_predict_keeps_rows_and_order_for_every_source_kind(trained, new_rows, tmp_path, kind):
    _, _, result = trained
    expected_rows = predict_file(result.model_dir, new_rows["plain"], tmp_path / "plain.csv")
    rows = predict_file(result.model_dir, new_rows[kind], tmp_path / f"{kind}.csv", block_size=64 * 1024)
    expected, got = pd.read_csv(tmp_path / "plain.csv"), pd.read_csv(tmp_path / f"{kind}.csv")
    assert rows == expected_rows == 3000
    assert (got["attempt_id"] == expected["attempt_id"]).all() and (got["player_id"] == expected["player_id"]).all()
    np.testing.assert_allclose(got[["p_0", "p_1"]].to_numpy(), expected[["p_0", "p_1"]].to_numpy(), atol=1e-6)


@pytest.mark.timeout(900)
def test_evaluate_agrees_across_source_kinds(trained, new_rows):
    _, _, result = trained
    reference = evaluate(result.model_dir, new_rows["plain"])
    for kind in ("gzip", "parts", "zip", "parquet"):
        report = evaluate(result.model_dir, new_rows[kind])
        assert report["rows"] == 3000 and report["confusion_matrix"] == reference["confusion_matrix"], kind
        assert report["accuracy"] == pytest.approx(reference["accuracy"], abs=1e-6)


@pytest.mark.timeout(900)
def test_a_column_with_hashed_out_of_vocabulary_values_is_encoded_as_in_training(tmp_path):
    rng = np.random.default_rng(3)
    rows = 3000
    guild = [f"g{i % 5}" for i in range(rows)]
    guild[2500:] = [f"late{i}" for i in range(2500, rows)]  # past max_categories: the hashed buckets
    frame = pd.DataFrame({"guild": guild, "level": rng.integers(1, 60, rows).astype(float),
                          "cleared": rng.integers(0, 2, rows)})
    frame.loc[::37, "guild"] = None  # missing: code 0, not a bucket
    source = tmp_path / "guilds.csv"
    frame.to_csv(source, index=False)
    model_ready_split(source, tmp_path / "split", categorical_columns=["guild"], max_categories=10, rows_per_shard=rows,
                      val_fraction=0.3, verbose=False)
    result = train(tmp_path / "split", tmp_path / "model", epochs=1, batch_size=256, workers=1, verbose=0,
                   saved_model=False)
    validate = QuestSequence(tmp_path / "split", "validate", batch_size=None, shuffle=False)
    assert validate.input_names()["codes"] == ["guild"]
    x, _ = validate[0]
    manifest = json.loads((tmp_path / "split" / "manifest.json").read_text())
    encoding = manifest["schema"]["encoding"]
    vocabulary, buckets = encoding["vocabularies"]["guild"], encoding["hash_buckets"]["guild"]
    assert len(vocabulary) == 10 and sorted(vocabulary[:5]) == [f"g{i}" for i in range(5)]  # the most frequent first
    assert buckets == DEFAULT_HASH_BUCKETS  # a capped vocabulary: its other values share the buckets
    shard = tmp_path / "split" / manifest["subsets"]["validate"]["shards"][0]["files"]["csv"]["name"]
    raw = pd.read_csv(shard, keep_default_na=False, na_values=[""])
    scored = predict_frame(result.model_dir, raw)
    np.testing.assert_allclose(scored[["p_0", "p_1"]].to_numpy(), result.model.predict(x, verbose=0), atol=1e-5)
    codes, values = x["codes"][:, 0], raw["guild"]
    outside = values.notna().to_numpy() & ~values.isin(vocabulary).to_numpy()
    assert outside.sum() > 0 and (codes[values.isna().to_numpy()] == 0).all()
    np.testing.assert_array_equal(codes[outside], 1 + fingerprint_buckets(values[outside].tolist(), buckets))
    inside = values.isin(vocabulary).to_numpy()
    np.testing.assert_array_equal(codes[inside], [1 + buckets + vocabulary.index(v) for v in values[inside]])


@pytest.mark.timeout(1800)
def test_a_regression_model_predicts_and_evaluates_like_keras(tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    source = tmp_path / "diabetes.csv"
    frame.to_csv(source, index=False)
    model_ready_split(source, tmp_path / "split", label="target", task="regression", rows_per_shard=500, verbose=False)
    result = train(tmp_path / "split", tmp_path / "model", epochs=3, batch_size=32, workers=1, verbose=0,
                   saved_model=False)
    validate = QuestSequence(tmp_path / "split", "validate", batch_size=None, shuffle=False)
    x, y = validate[0]
    expected = result.model.predict(x, verbose=0)[:, 0]
    manifest = json.loads((tmp_path / "split" / "manifest.json").read_text())
    rows = pd.read_csv(tmp_path / "split" / manifest["subsets"]["validate"]["shards"][0]["files"]["csv"]["name"])
    scored = predict_frame(result.model_dir, rows)
    np.testing.assert_allclose(scored["predicted"].to_numpy(), expected, rtol=1e-4, atol=1e-3)
    report = evaluate(result.model_dir, tmp_path / "split")
    loss, mae, rmse = result.model.evaluate(x, y, verbose=0)
    assert report["mae"] == pytest.approx(mae, rel=1e-4) and report["rmse"] == pytest.approx(rmse, rel=1e-4)
    from_file = evaluate(result.model_dir, tmp_path / "split" / manifest["subsets"]["validate"]["shards"][0]["files"]["csv"]["name"])
    assert from_file["mae"] == pytest.approx(mae, rel=1e-4)
    assert from_file["baseline"]["rmse"] > 0


@pytest.mark.timeout(900)
def test_predict_reads_spark_typed_parquet_and_skips_empty_parts(trained, new_rows, tmp_path):
    import pyarrow as pa

    _, _, result = trained
    predict_file(result.model_dir, new_rows["plain"], tmp_path / "plain.csv")
    table = pa_csv.read_csv(new_rows["plain"])
    typed = {"quest_type": table["quest_type"].dictionary_encode(),  # what Spark's dictionary pages read as
             "power": table["power"].cast(pa.decimal128(10, 1)),
             "party_size": table["party_size"].cast(pa.duration("s")),
             "player_level": table["player_level"].cast(pa.uint64())}
    for name, column in typed.items():
        table = table.set_column(table.schema.get_field_index(name), name, column)
    parts = tmp_path / "parts"
    parts.mkdir()
    pq.write_table(table.slice(0, 1800), parts / "part-00000.parquet", row_group_size=700)
    (parts / "part-00001.parquet").write_bytes(b"")
    pq.write_table(table.slice(1800), parts / "part-00002.parquet", row_group_size=700)
    (parts / "_SUCCESS").write_bytes(b"")
    assert predict_file(result.model_dir, parts, tmp_path / "typed.csv") == 3000
    expected, got = pd.read_csv(tmp_path / "plain.csv"), pd.read_csv(tmp_path / "typed.csv")
    assert (got["attempt_id"] == expected["attempt_id"]).all()
    np.testing.assert_allclose(got[["p_0", "p_1"]].to_numpy(), expected[["p_0", "p_1"]].to_numpy(), atol=1e-6)


@pytest.mark.timeout(900)
def test_predict_refuses_a_record_over_16_mib_as_split_does(trained, new_rows, tmp_path):
    from questlearn.io.csvscan import DEFAULT_MAX_RECORD_BYTES, CsvFormatError

    _, _, result = trained
    header, *lines = new_rows["plain"].read_text().splitlines(keepends=True)[:4]
    source = tmp_path / "long.csv"
    with open(source, "w") as handle:  # the third row's quest_type holds 17 MiB
        handle.write(header + lines[0] + lines[1])
        attempt, player, _, rest = lines[2].split(",", 3)
        handle.write(f"{attempt},{player},q{'x' * (DEFAULT_MAX_RECORD_BYTES + (1 << 20))},{rest}")
    try:
        with pytest.raises(CsvFormatError) as refused:
            predict_file(result.model_dir, source, tmp_path / "out.csv")
    finally:
        source.unlink()
    assert refused.value.line == 4 and refused.value.byte_offset == len(header) + len(lines[0]) + len(lines[1])
    assert "more than the 16777216 bytes (16 MiB) questlearn reads as one record" in str(refused.value)
