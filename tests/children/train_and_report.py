"""Build the model for a split, train it one epoch, and print, as one JSON line, what the memory test needs.

Usage: python train_and_report.py SPLIT_DIR

Prints ``{"build_growth_bytes", "fit_growth_bytes", "embedding_parameters", "embedding_size",
"batch_bytes"}``: resident memory added by building the model and, beyond that, the peak the epoch
reached; the parameters of the model's embedding layers and the width of the first one; the bytes of
one training batch's inputs.
"""

import json
import resource
import sys

import psutil


def main():
    split_dir = sys.argv[1]
    import keras

    from questlearn.data.dataset import QuestSequence
    from questlearn.train.model import build_model

    train = QuestSequence(split_dir, "train", batch_size=1024)
    validate = QuestSequence(split_dir, "validate", batch_size=1024)
    x, _ = train[0]
    before = psutil.Process().memory_info().rss
    model = build_model(*train.feature_moments(), train.num_classes, code_counts=train.code_counts())
    built = psutil.Process().memory_info().rss
    model.fit(train, validation_data=validate, epochs=1, verbose=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    embeddings = [layer for layer in model.layers if isinstance(layer, keras.layers.Embedding)]
    print(json.dumps({
        "build_growth_bytes": built - before,
        "fit_growth_bytes": max(peak - built, 0),
        "embedding_parameters": sum(layer.count_params() for layer in embeddings),
        "embedding_size": embeddings[0].output_dim if embeddings else 0,
        "batch_bytes": sum(block.nbytes for block in x.values()),
    }))


if __name__ == "__main__":
    main()
