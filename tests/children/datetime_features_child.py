"""Load a ``.keras`` model of datetime features where questlearn cannot be imported, and save its outputs.

Usage: python datetime_features_child.py MODEL.keras SECONDS.npy OUTPUT.npz
"""

import sys

sys.modules["questlearn"] = None  # any import of questlearn (even an installed copy) now raises ImportError


def main():
    model_path, seconds_path, output_path = sys.argv[1:4]
    try:
        import questlearn  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("questlearn is importable in the child")
    import keras
    import numpy as np

    model = keras.saving.load_model(model_path)
    outputs = model.predict(np.load(seconds_path), verbose=0)
    np.savez(output_path, **{name: np.asarray(value) for name, value in outputs.items()})
    print("BACKEND", keras.backend.backend(), flush=True)


if __name__ == "__main__":
    main()
