"""The smallest Keras model a QuestSequence feeds: one softmax layer over its input blocks.

The fault and orphan children fit it: what they test is the loading workers, not the network,
so it compiles with plain ``sgd`` and no metrics (as little tracing as a fit can have).
"""


def softmax_over_blocks(dataset):
    """A compiled model taking ``dataset``'s ``x`` dict (numbers float32, codes int32) and giving class probabilities."""
    import keras

    inputs = {block: keras.Input((len(names),), dtype="float32" if block == "numbers" else "int32", name=block)
              for block, names in dataset.input_names().items()}
    columns = [keras.ops.cast(tensor, "float32") for tensor in inputs.values()]
    joined = columns[0] if len(columns) == 1 else keras.layers.Concatenate()(columns)
    model = keras.Model(inputs, keras.layers.Dense(dataset.num_classes, activation="softmax")(joined))
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model
