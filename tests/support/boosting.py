"""The boosting baselines' shared data: a quest log with a column of more than 255 categories, split and
trained on, and the split's shards read straight from their files."""

import numpy as np
from helpers import ID_COLUMNS
from splits import model_ready_split

from questlearn.manifest._files import load_manifest
from questlearn.synth import write_quest_log
from questlearn.train._fit import train


def trained_with_zone(root):
    """A quest log with a 400-value ``zone`` column (465 codes: ordinal for HistGradientBoosting), split into
    7 training shards and 3 validate shards, and a network trained on it: ``(root, split, model_dir)``."""
    lines = write_quest_log(root / "plain.csv", rows=4000, seed=5).read_text().splitlines()
    rng = np.random.default_rng(2)
    zones = [f"z{rng.integers(400)}" for _ in lines[1:]]
    (root / "quests.csv").write_text("\n".join([lines[0] + ",zone"] + [f"{line},{z}" for line, z in zip(lines[1:], zones)]) + "\n")
    split = root / "split"
    model_ready_split(root / "quests.csv", split, rows_per_shard=500, val_fraction=0.25, seed=1, id_columns=ID_COLUMNS,
                      categorical_columns=["zone"])
    result = train(split, root / "model", epochs=1, batch_size=256, workers=1, verbose=0)
    return root, split, result.model_dir


def shard_blocks(split, subset):
    """Every row of a subset read straight from its .npy shards, in shard order: features (numbers, then codes with
    code 0 as NaN), class indices or targets, and the boolean mask of code columns of at most 255 codes."""
    manifest = load_manifest(split)
    encoding = manifest["schema"]["encoding"]
    blocks = []
    for shard in manifest["subsets"][subset]["shards"]:
        numbers, codes, labels = (np.load(split / shard["files"][part]["name"]) for part in ("numbers", "codes", "labels"))
        numbers = numbers.copy()
        kept = []
        for position, name in enumerate(encoding["code_columns"]):
            if name.endswith(".missing"):  # a missing-value indicator: NaN in its numbers column, for boosting
                numbers[codes[:, position] == 1, encoding["numeric"].index(name.removesuffix(".missing"))] = np.nan
            else:
                kept.append(position)
        codes = codes[:, kept].astype(np.float32)
        codes[codes == 0] = np.nan
        blocks.append((np.hstack([numbers, codes]), labels))
    x = np.concatenate([b[0] for b in blocks])
    stored = np.concatenate([b[1] for b in blocks])
    labels = stored if manifest["schema"]["task"] == "regression" else np.asarray(manifest["schema"]["label_codes"])[stored]
    categorical = np.array([False] * len(encoding["numeric"]) + [count <= 255 for name, count in
                                                                 zip(encoding["code_columns"], encoding["code_counts"])
                                                                 if not name.endswith(".missing")])
    return x, labels, categorical
