"""An edited or damaged manifest is refused on load, naming the wrong field."""

import copy
import json
import shutil

import pytest

from questlearn.manifest._files import load_manifest
from questlearn.manifest._validate import MAX_CATEGORIES, validate_manifest


@pytest.fixture(scope="module")
def manifest(id_split):
    return json.loads((id_split / "manifest.json").read_text())


def edited(manifest, edit):
    changed = copy.deepcopy(manifest)
    edit(changed)
    return changed


def set_in(*path_and_value):
    *path, key, value = path_and_value

    def edit(manifest):
        target = manifest
        for part in path:
            target = target[part]
        target[key] = value
    return edit


BAD_EDITS = {
    "complete is a string": (set_in("complete", "no"), "field complete must be True"),
    "complete is 1": (set_in("complete", 1), "field complete must be True"),
    "classes is a string": (set_in("schema", "classes", "ab"), "field schema.classes must be of type array"),
    "no classes": (set_in("schema", "classes", []), "field schema.classes has 0 entries"),
    "negative rows": (set_in("source", "rows", -1), "field source.rows must be at least 0"),
    "rows as text": (set_in("subsets", "train", "shards", 3, "rows", "300"),
                     r"field subsets.train.shards\[3\].rows must be of type integer"),
    "rows beyond int64": (set_in("subsets", "train", "shards", 3, "rows", 2 ** 70),
                          r"field subsets.train.shards\[3\].rows must be at most"),
    "a million categories": (set_in("schema", "categories", "quest_type", [str(i) for i in range(10 ** 6)]),
                             f"field schema.categories.quest_type has 1000000 entries, more than the {MAX_CATEGORIES}"),
    "more categories than the split allowed": (set_in("schema", "categories", "quest_type", [str(i) for i in range(1001)]),
                                               "more than the split's max_categories 1000"),
    "label code past the classes": (set_in("schema", "label_codes", [0, 2]), r"field schema.label_codes\[1\] is 2"),
    "negative label code": (set_in("schema", "label_codes", [-1, 0]), r"field schema.label_codes\[0\] must be at least 0"),
    "no features key": (lambda m: m["schema"].pop("features"), "field schema lacks the required key 'features'"),
    "unknown column kind": (set_in("schema", "columns", 2, "kind", "blob"), r"field schema.columns\[2\].kind must be"),
    "feature that is no column": (set_in("schema", "features", 0, "nope"), r"field schema.features\[0\] names 'nope'"),
    "bad checksum": (set_in("subsets", "validate", "shards", 0, "files", "features", "sha256", "xyz"),
                     r"field subsets.validate.shards\[0\].files.features.sha256"),
    "no data offset": (lambda m: m["subsets"]["train"]["shards"][0]["files"]["labels"].pop("data_offset"),
                       r"field subsets.train.shards\[0\].files.labels lacks the required key 'data_offset'"),
    "data offset past the end": (set_in("subsets", "train", "shards", 0, "files", "rows", "data_offset", 10 ** 9),
                                 r"field subsets.train.shards\[0\].files.rows.data_offset is 1000000000, past"),
    "an old format version": (set_in("format_version", 1), "field format_version must be 2"),
    "no encoding": (lambda m: m["schema"].pop("encoding"), "field schema lacks the required key 'encoding'"),
    "unknown fill": (set_in("schema", "encoding", "fill", "median"), "field schema.encoding.fill must be"),
    "a fill value too few": (lambda m: m["schema"]["encoding"]["fill_values"].pop(),
                             "field schema.encoding.fill_values has"),
    "encoding of another column": (set_in("schema", "encoding", "numeric", ["nope"]),
                                   "field schema.encoding.numeric is"),
    "vocabulary unlike the categories": (lambda m: m["schema"]["encoding"]["vocabularies"]["quest_type"].pop(),
                                         "field schema.encoding.vocabularies.quest_type differs"),
    "columns that are not the encoding's": (lambda m: m["schema"]["encoding"]["columns"].pop(),
                                            "field schema.encoding.columns has"),
    "a shard past rows_per_shard": (set_in("parameters", "rows_per_shard", 2),
                                    r"field subsets.train.shards\[0\].rows is \d+, more than rows_per_shard 2"),
    "rows that do not add up": (set_in("source", "rows", 7), "field source.rows is 7, but the shards hold 2500"),
    "a list at the top": (lambda m: m.clear(), "lacks the required key"),
}


@pytest.mark.parametrize("case", BAD_EDITS)
def test_a_wrong_field_is_named(manifest, case):
    edit, message = BAD_EDITS[case]
    with pytest.raises(ValueError, match=message):
        validate_manifest(edited(manifest, edit), "manifest.json")


def test_newer_fields_and_regression_manifests_are_accepted(manifest):
    def extend(m):
        m["parameters"]["na_values"] = ["NA"]
        m["parameters"]["something_new"] = {"nested": [1, 2]}
        m["schema"]["columns"].append({"name": "comment", "kind": "text"})
        m["schema"].update(task="regression", classes=[], label_codes=[], na_values=["", "NA"], delimiter=";")
        m["stats"]["quest_type"]["oov"] = 3
        m["source"]["files"] = [{"name": "part-1.csv", "bytes": 10, "sha256": "0" * 64, "rows": 2}]
    validate_manifest(edited(manifest, extend), "manifest.json")
    validate_manifest(edited(manifest, set_in("schema", "task", "classification")), "manifest.json")
    with pytest.raises(ValueError, match="field schema.delimiter"):
        validate_manifest(edited(manifest, set_in("schema", "delimiter", ";;")), "manifest.json")
    with pytest.raises(ValueError, match="field schema.task must be"):
        validate_manifest(edited(manifest, set_in("schema", "task", "ranking")), "manifest.json")


def test_load_manifest_refuses_an_edited_file_and_broken_json(id_split, tmp_path):
    split = tmp_path / "split"
    shutil.copytree(id_split, split)
    path = split / "manifest.json"
    original = json.loads(path.read_text())
    path.write_text(json.dumps(edited(original, set_in("schema", "classes", "ab"))))
    with pytest.raises(ValueError, match=f"{path}: field schema.classes"):
        load_manifest(split)
    path.write_text(json.dumps(original)[:-10])
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_manifest(split)
    path.write_text(json.dumps(original))
    assert load_manifest(split)["source"]["rows"] == 2500
