"""Hand-edited or hostile model files stop predict, evaluate and export with one line naming the file.

Every model file is loaded behind one guard (``serve._model_files.load_model_files``): ``inference.json``
checked by a few lines of code, the Keras file in safe mode (no code from it runs), and the two checked to fit.
"""

import json
import shutil
import zipfile

import pytest

from questlearn.cli import main
from questlearn.quiet import keras


@pytest.fixture(scope="module")
def trained(small_model):
    return small_model


def run_all(capsys, model, log, split_dir, tmp_path):
    """predict, evaluate and export on ``model``: ``{command: (exit code, stderr)}``."""
    runs = {"predict": ("predict", model, log, tmp_path / "out.csv"), "evaluate": ("evaluate", model, split_dir),
            "export": ("export", model, "--output", tmp_path / "saved")}
    results = {}
    for command, args in runs.items():
        capsys.readouterr()
        code = main([str(a) for a in args] + ["--no-progress"])
        results[command] = (code, capsys.readouterr().err)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "saved").exists()
    return results


def assert_one_line(code: int, stderr: str, *phrases: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, stderr
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])


def edit_spec(model, edit) -> None:
    path = model / "inference.json"
    spec = json.loads(path.read_text())
    edit(spec)
    path.write_text(json.dumps(spec))


def edit_keras_config(path, old: str, new: str) -> None:
    """Rewrite ``config.json`` inside a ``.keras`` archive, replacing the first ``old`` by ``new``."""
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    config = entries["config.json"].decode()
    assert old in config
    entries["config.json"] = config.replace(old, new, 1).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


@pytest.mark.timeout(900)
def test_classes_that_do_not_match_the_output_width_are_named(trained, tmp_path, capsys):
    log, split_dir, result = trained
    model = shutil.copytree(result.model_dir, tmp_path / "model")
    edit_spec(model, lambda spec: spec.update(classes=["0", "1", "2"]))
    for command, (code, stderr) in run_all(capsys, model, log, split_dir, tmp_path).items():
        assert_one_line(code, stderr, str(model / "inference.json"), "gives 2 outputs a row", "expects 3")


@pytest.mark.timeout(900)
def test_a_feature_removed_from_inference_json_is_named(trained, tmp_path, capsys):
    log, split_dir, result = trained
    model = shutil.copytree(result.model_dir, tmp_path / "model")
    edit_spec(model, lambda spec: spec.update(features=[f for f in spec["features"] if f["name"] != "quest_type"]))
    for command, (code, stderr) in run_all(capsys, model, log, split_dir, tmp_path).items():
        assert_one_line(code, stderr, str(model / "inference.json"), "'quest_type'")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("old, new, said", [
    ('"class_name": "Dense"', '"class_name": "NoSuchLayer"', "Could not deserialize 'keras.layers.NoSuchLayer'"),
    ('"activation": "relu"', '"activation": {"module": "os", "class_name": "function", "config": "system", '
                             '"registered_name": "system"}', "Could not locate function 'system'"),
], ids=["unknown_class", "unknown_function"])
def test_a_keras_config_naming_an_unknown_class_or_function_is_named(trained, tmp_path, capsys, old, new, said):
    log, split_dir, result = trained
    model = shutil.copytree(result.model_dir, tmp_path / "model")
    for name in ("inference.keras", "model.keras"):
        edit_keras_config(model / name, old, new)
    for command, (code, stderr) in run_all(capsys, model, log, split_dir, tmp_path).items():
        name = "model.keras" if command == "evaluate" else "inference.keras"
        assert_one_line(code, stderr, str(model / name), "cannot be loaded", said, "train the model again")


@pytest.mark.timeout(900)
def test_a_python_lambda_in_a_keras_file_is_refused_and_never_run(trained, tmp_path, capsys, monkeypatch):
    log, split_dir, result = trained
    model = shutil.copytree(result.model_dir, tmp_path / "model")
    ran = tmp_path / "ran"
    monkeypatch.setenv("QUESTLEARN_TEST_LAMBDA_RAN", str(ran))  # the lambda's code leaves this file if it ever runs
    inputs = keras.Input((3,))
    touch = lambda x: (open(__import__("os").environ["QUESTLEARN_TEST_LAMBDA_RAN"], "w").close(), x)[1]  # noqa: E731
    hostile = keras.Model(inputs, keras.layers.Lambda(touch)(inputs))
    for name in ("inference.keras", "model.keras"):
        (model / name).unlink()
        hostile.save(model / name)
    ran.unlink(missing_ok=True)  # saving traced the lambda once, here
    for command, (code, stderr) in run_all(capsys, model, log, split_dir, tmp_path).items():
        name = "model.keras" if command == "evaluate" else "inference.keras"
        assert_one_line(code, stderr, str(model / name), "Python code", "never runs")
    assert not ran.exists()
