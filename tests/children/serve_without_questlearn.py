"""Score raw rows with inference.keras and the SavedModel in a process where questlearn cannot be imported.

Usage: python serve_without_questlearn.py MODEL_DIR ROWS_JSON OUT_JSON

``ROWS_JSON`` holds ``{"columns": {name: [values]}, "kinds": {name: kind}}``: raw values as a log has
them (numbers or null, strings or null, timestamps as text or null). Writes ``{"keras": [[p...]],
"saved_model": [[p...]]}``, the outputs of ``inference.keras`` (through ``model.predict``, with the
documented inputs) and of the SavedModel's ``serving_default`` signature.
"""

import datetime
import json
import os
import sys

sys.modules["questlearn"] = None  # any import of questlearn now fails: this process serves without it

MISSING_SECONDS = -(2 ** 63)  # what inference.keras takes for a missing timestamp
EPOCH = datetime.datetime(1970, 1, 1)


def wall_clock_seconds(text):
    """Seconds since 1970 of the time as written (its zone offset not applied), or MISSING_SECONDS."""
    if text is None or text == "":
        return MISSING_SECONDS
    moment = datetime.datetime.fromisoformat(text).replace(tzinfo=None)
    return int((moment - EPOCH).total_seconds() // 1)


def main():
    model_dir, rows_path, out_path = sys.argv[1:4]
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import questlearn  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("questlearn could be imported")
    import keras
    import numpy as np
    import tensorflow as tf

    raw = json.load(open(rows_path))
    columns, kinds = raw["columns"], raw["kinds"]
    inputs, serving = {}, {}
    for name, values in columns.items():
        if kinds[name] == "numeric":
            array = np.array([np.nan if v is None else v for v in values], np.float32)
            serving[name] = tf.constant(array)
        elif kinds[name] == "datetime":
            array = np.array([wall_clock_seconds(v) for v in values], np.int64)
            serving[name] = tf.constant(["" if v is None else v for v in values])
        else:
            array = np.array(["" if v is None else v for v in values], object)
            serving[name] = tf.constant(array.astype(str))
        inputs[name] = tf.constant(array.reshape(-1, 1))
    model = keras.saving.load_model(os.path.join(model_dir, "inference.keras"))
    from_keras = model.predict(inputs, verbose=0)
    saved = tf.saved_model.load(os.path.join(model_dir, "saved_model"))
    from_saved = list(saved.signatures["serving_default"](**serving).values())[0].numpy()
    json.dump({"keras": np.asarray(from_keras).tolist(), "saved_model": from_saved.tolist()}, open(out_path, "w"))


if __name__ == "__main__":
    main()
