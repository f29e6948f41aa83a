"""The command line: help and defaults, new commands, Ctrl-C, and output free of TensorFlow's log."""

import json
import os
import re
import signal
import subprocess
import sys

import pytest

import questlearn
from questlearn.cli import build_parser, main
from questlearn.quiet import is_noise

TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} \S+ +\d+ \S+:\d+\]|absl::InitializeLog|cuInit|rebuild TensorFlow")


def cli(*args, env=None, timeout=840):
    return subprocess.run([sys.executable, "-m", "questlearn", *map(str, args)], capture_output=True, text=True,
                          env=env or plain_env(), timeout=timeout)


def plain_env():
    """The user's environment: TF_CPP_MIN_LOG_LEVEL is not set for them."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_every_option_has_help_and_help_shows_defaults():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {"synth", "inspect", "split", "train", "export", "predict", "evaluate", "plot",
                             "demo"}
    for name, command in commands.items():
        text = command.format_help()
        for action in command._actions:
            if action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help text"
            if action.option_strings and action.default is not None:
                assert "(default:" in text
        assert text.count("(default:") >= sum(1 for a in command._actions if a.option_strings and a.dest != "help"), name
    train_help = re.sub(r"\s+", " ", commands["train"].format_help())
    assert "--model {default,small}" in train_help and "(default: default)" in train_help


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"questlearn {questlearn.__version__}"


STDERR_CHECKS = (
    "import os, sys\n"
    "import numpy as np\n"
    "from questlearn.quiet import filtered_stderr, keras\n"
    "from questlearn.train.model import SparseAUC\n"
    # A 3-class model's AUC runs boolean ops; on CPUs without AVX-512 oneDNN logs an E-line about it once.
    "x, y = np.random.rand(64, 4).astype('float32'), np.arange(64) % 3\n"
    "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation='softmax')])\n"
    "model.compile('adam', 'sparse_categorical_crossentropy', metrics=[SparseAUC(3)])\n"
    "model.fit(x, y, epochs=1, verbose=0)\n"
    "sys.stderr.flush()\n"
    "os.write(2, b'-- filtered --\\n')\n"
    "with filtered_stderr():\n"
    "    os.write(2, b'I0000 00:00:1795571487.494494   11176 port.cc:153] oneDNN custom operations are on.\\n')\n"
    "    os.write(2, b'E0000 00:00:1795571494.970452   11176 cuda_platform.cc:52] failed call to cuInit: INTERNAL\\n')\n"
    "    os.write(2, b'E0000 00:00:1795571494.970452   11176 kernel.cc:9] a genuine failure\\n')\n"
    "    os.write(2, b'Traceback: something real\\n')\n"
)


@pytest.fixture(scope="module")
def stderr_checks():
    """One fresh process (the user's environment) that fits a multi-class model, then writes start-up noise and
    real errors inside ``filtered_stderr``; returns its exit code and its stderr before and after the marker."""
    result = subprocess.run([sys.executable, "-c", STDERR_CHECKS], capture_output=True, text=True, env=plain_env(),
                            timeout=840)
    fit, marker, filtered = result.stderr.partition("-- filtered --\n")
    return result.returncode, result.stderr, fit, filtered if marker else None


@pytest.mark.timeout(900)
def test_quiet_import_drops_start_up_noise_but_keeps_real_errors(stderr_checks):
    returncode, stderr, _, filtered = stderr_checks
    assert returncode == 0, stderr
    assert filtered.splitlines() == ["E0000 00:00:1795571494.970452   11176 kernel.cc:9] a genuine failure",
                                     "Traceback: something real"]
    assert is_noise("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert not is_noise("ValueError: bad input")


@pytest.mark.timeout(900)
def test_multi_class_fit_writes_no_onednn_boolean_notice_to_stderr(stderr_checks):
    """A 3-class model's AUC runs boolean ops; on CPUs without AVX-512 oneDNN logs an E-line about it once."""
    returncode, stderr, fit, _ = stderr_checks
    assert returncode == 0, stderr[-3000:]
    assert fit.strip() == "", stderr[-3000:]


@pytest.mark.timeout(900)
def test_demo_runs_end_to_end_and_writes_no_tensorflow_log_line_to_stderr(tmp_path):
    result = cli("demo", "--directory", tmp_path, "--rows", 5000, "--epochs", 1, "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    noisy = [line for line in result.stderr.splitlines() if TF_LOG_LINE.search(line)]
    assert not noisy, noisy
    assert (tmp_path / "model" / "inference.keras").exists()
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["epochs"] == 1 and 0 < summary["best_val_accuracy"] <= 1  # quality: see tests/train/test_train.py
    assert (tmp_path / "split" / "manifest.json").exists() and (tmp_path / "model" / "history.json").exists()


# ``python -m questlearn`` with SIGINT handled as in a terminal. A child inherits an ignored SIGINT (a shell's
# background job ignores it, and so does a test run started from one), and Python then leaves it ignored.
AS_IN_A_TERMINAL = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                    "runpy.run_module('questlearn', run_name='__main__', alter_sys=True)")


@pytest.mark.timeout(900)
def test_ctrl_c_during_split_prints_one_line_and_exits_130(tmp_path):
    from helpers import pause_when_exists, resume

    from questlearn.synth import write_quest_log

    log = write_quest_log(tmp_path / "big.csv", rows=150_000, seed=2)
    for attempt in range(3):  # the split is paused as its pass starts; a retry only if it ended first
        out = tmp_path / f"split{attempt}"
        args = ["split", str(log), str(out), "--block-size", "16384", "--no-progress"]
        process = subprocess.Popen([sys.executable, "-c", AS_IN_A_TERMINAL, *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=plain_env())
        paused = pause_when_exists(process, out / ".questlearn-split")
        if paused and not (out / "manifest.json").exists():
            break
        resume(process)
        process.communicate(timeout=900)
    else:
        pytest.fail("the split finished three times before Ctrl-C could land in its pass")
    process.send_signal(signal.SIGINT)  # pending while paused: it lands in the pass
    resume(process)
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 130, (stdout, stderr)
    assert stderr == "interrupted; run the same command again to resume\n"
    assert not (out / "manifest.json").exists()
    finished = cli(*args)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "split 150000 rows" in finished.stdout


@pytest.mark.timeout(1800)
def test_train_options_predict_evaluate_and_plot_commands(tmp_path, capsys):
    from splits import model_ready_split

    from questlearn.synth import write_quest_log

    log = write_quest_log(tmp_path / "quests.csv", rows=3000, seed=4)
    split_dir = tmp_path / "split"
    model_ready_split(log, split_dir, fill="mean", rows_per_shard=1000, val_fraction=0.25, id_columns=("attempt_id", "player_id"))
    model = tmp_path / "model"
    result = cli("train", split_dir, "--model-dir", model, "--epochs", 2, "--hidden", "16,8", "--dropout", 0,
                 "--learning-rate", 0.01, "--patience", 1, "--class-weight", "balanced",
                 "--tensorboard", tmp_path / "tb", "--verbose", 0)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not [line for line in result.stderr.splitlines() if TF_LOG_LINE.search(line)], result.stderr
    import keras

    trained = keras.saving.load_model(model / "model.keras")
    assert [layer.units for layer in trained.layers if isinstance(layer, keras.layers.Dense)] == [16, 8, 2]
    assert json.loads((model / "inference.json").read_text())["fill"] == "mean"
    assert any((tmp_path / "tb").rglob("*tfevents*"))

    predicted = cli("predict", model, log, tmp_path / "scores.csv", "--no-progress")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert "wrote 3000 predictions" in predicted.stdout
    assert not [line for line in predicted.stderr.splitlines() if TF_LOG_LINE.search(line)], predicted.stderr
    assert len((tmp_path / "scores.csv").read_text().splitlines()) == 3001

    # train and predict ran in fresh processes above (TensorFlow's log lines); these run in this one
    code = main(["evaluate", str(model), str(split_dir), "--no-progress"])
    evaluated = capsys.readouterr()
    assert code == 0, evaluated.err[-3000:]
    report = json.loads(evaluated.out)
    assert {"loss", "accuracy", "auc", "majority_baseline", "confusion_matrix"} <= set(report)

    code = main(["predict", str(model), str(tmp_path / "nowhere.csv"), str(tmp_path / "x.csv"), "--no-progress"])
    missing = capsys.readouterr()
    assert code == 2 and "does not exist" in missing.err and "Traceback" not in missing.err

    code = main(["plot", str(model), "-o", str(tmp_path / "history.png")])
    plotted = capsys.readouterr()
    assert code == 0, plotted.err[-3000:]
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _churn_log(path):
    """A customer log without a ``cleared`` column: its label is ``churned`` (yes/no), not last."""
    lines = ["customer_id,age,churned,plan,monthly_spend"]
    lines += [f"C{i},{20 + i % 40},{'yes' if i % 4 == 0 else 'no'},{'gold' if i % 3 == 0 else 'basic'},{i * 7 % 100}.5"
              for i in range(80)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_inspect_without_a_label_lists_every_column_and_names_the_likely_labels(tmp_path, capsys):
    source = _churn_log(tmp_path / "customers.csv")
    code = main(["inspect", str(source), "--rows", "2"])
    result = capsys.readouterr()
    assert code == 0, result.err
    out = result.out
    for column, kind in (("customer_id", "id"), ("age", "numeric"), ("churned", "categorical"),
                         ("plan", "categorical"), ("monthly_spend", "numeric")):
        assert re.search(rf"^  {column} +{kind} +0 ", out, re.MULTILINE), (column, out)
    assert not re.search(r"^  \S+ +label ", out, re.MULTILINE)  # no column is taken for the label: none was given
    assert "likely label columns: churned (its name, 2 values), plan (2 values)\n" in out  # last, but 80 values
    assert f"next: questlearn inspect {source} --label churned" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customers.csv"]  # wrote nothing


def test_inspect_with_a_label_shows_it_as_the_label_and_suggests_nothing(tmp_path, capsys):
    source = _churn_log(tmp_path / "customers.csv")
    code = main(["inspect", str(source), "--label", "churned"])
    result = capsys.readouterr()
    assert code == 0, result.err
    assert re.search(r"^  churned +label +0 +2 ", result.out, re.MULTILINE), result.out
    assert "likely label columns" not in result.out
    code = main(["inspect", str(source), "--label", "cleared"])
    missing = capsys.readouterr()
    assert code == 2 and "label column 'cleared' is missing from the header" in missing.err


def test_split_keeps_cleared_as_its_default_label():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert commands["split"].parse_args(["in.csv", "out"]).label == "cleared"
    assert commands["inspect"].parse_args(["in.csv"]).label is None


def test_top_level_help_lists_every_command_and_predict_help_names_its_sources():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    description = parser.description.split("questlearn", 1)[1]
    assert [name.strip() for name in description.split("|")] == list(commands)
    assert "export" in re.sub(r"\s+", " ", parser.format_help().split("positional arguments")[0])
    predict_help = re.sub(r"\s+", " ", commands["predict"].format_help())
    assert "Parquet" in predict_help and "CSV file with the feature columns" not in predict_help
