"""Batch size, epochs and patience follow the data size; the user's values win; the plan is printed."""

from types import SimpleNamespace

import numpy as np
import pytest

from questlearn.train._defaults import (IN_MEMORY_TARGET_STEPS, STEPS_PER_EXECUTION, TARGET_STEPS, steps_per_execution,
                                        training_plan)
from questlearn.train.model import warmup_steps


def test_a_300_row_table_gets_small_batches_and_many_epochs():
    plan = training_plan(300)
    assert plan.batch_size == 32
    assert plan.epochs == 200  # 10 steps an epoch: the cap, 2,000 steps in all (the old defaults gave 10)
    assert plan.patience == 20
    assert set(plan.chosen) == {"batch size", "epochs", "patience"}


def test_a_5_million_row_log_gets_large_batches_and_few_epochs():
    plan = training_plan(5_000_000)
    assert plan.batch_size == 4096
    steps = -(-5_000_000 // 4096)
    assert plan.epochs == max(2, -(-TARGET_STEPS // steps)) == 5
    assert plan.patience == 3


def test_the_plan_aims_at_a_few_thousand_steps_across_sizes():
    for rows in (1_000, 20_000, 300_000, 2_000_000, 50_000_000):
        plan = training_plan(rows)
        steps = plan.epochs * -(-rows // plan.batch_size)
        assert 32 <= plan.batch_size <= 4096 and plan.batch_size & (plan.batch_size - 1) == 0
        assert TARGET_STEPS <= steps < 2 * TARGET_STEPS or plan.epochs == 2, (rows, plan)


def test_the_users_values_win_and_only_the_rest_is_chosen():
    plan = training_plan(300, batch_size=1024, epochs=7)
    assert (plan.batch_size, plan.epochs) == (1024, 7) and plan.chosen == ("patience",)
    assert "chosen from the data size" in plan.describe(300)
    assert training_plan(300, 64, 5, 2).chosen == () and "as given" in training_plan(300, 64, 5, 2).describe(300)


def test_a_table_in_memory_gets_a_larger_step_budget_and_patience_that_counts_after_the_warm_up():
    for rows in (20_000, 54_000, 300_000):
        from_shards, in_memory = training_plan(rows), training_plan(rows, in_memory=True, warmup_steps=warmup_steps)
        steps = -(-rows // in_memory.batch_size)
        assert in_memory.batch_size == from_shards.batch_size  # the same batches: only how long, and how patient
        assert IN_MEMORY_TARGET_STEPS <= in_memory.epochs * steps < IN_MEMORY_TARGET_STEPS + steps
        assert in_memory.epochs > 3 * from_shards.epochs
        assert in_memory.patience == min(max(in_memory.epochs // 10, 5), 20)  # a tenth of its own plan, 5 to 20
        assert in_memory.warmup_epochs == -(-warmup_steps(in_memory.epochs * steps) // steps) >= 1
    hourly = training_plan(5_255, in_memory=True, warmup_steps=warmup_steps)  # 165 steps an epoch
    assert (hourly.epochs, hourly.patience, training_plan(5_255).patience) == (146, 14, 3)  # from shards: 37 epochs
    small = training_plan(276, in_memory=True, warmup_steps=warmup_steps)
    assert (small.batch_size, small.epochs, small.patience, small.warmup_epochs) == (32, 200, 20, 10)
    assert "counted after the warm-up's 10 epochs" in small.describe(276) and "in memory" in small.describe(276)
    assert training_plan(276, in_memory=True).warmup_epochs == 0  # no schedule (the "small" preset): counted at once
    given = training_plan(50_000, 64, 3, 2, in_memory=True, warmup_steps=warmup_steps)
    assert (given.epochs, given.patience, given.warmup_epochs, given.chosen) == (3, 2, 1, ())  # 117 warm-up steps


def test_steps_per_execution_divides_the_save_interval_and_is_one_where_batches_must_be_seen():
    assert steps_per_execution() == STEPS_PER_EXECUTION > 1
    assert steps_per_execution(save_every_batches=10) == 2 and steps_per_execution(save_every_batches=48) == 16
    assert steps_per_execution(per_batch_callbacks=True) == 1 == steps_per_execution(backend="torch")


def test_piecewise_linear_embedding_encodes_each_number_between_its_quantiles():
    import keras

    from questlearn.train.model import _piecewise_linear

    quantiles = [[0.0, 1.0, 3.0], [10.0, 20.0]]  # two bins for the first number, one for the second
    numbers = keras.Input((2,))
    model = keras.Model(numbers, _piecewise_linear(numbers, quantiles, 1))
    layer = model.get_layer("numeric_embedding")
    kernel = np.zeros((2, 2, 1), np.float32)
    kernel[0, 0, 0], kernel[0, 1, 0], kernel[1, 0, 0] = 1.0, 10.0, 100.0  # read the bins back as one number
    layer.set_weights([kernel, np.zeros((2, 1), np.float32)])
    x = np.array([[-5.0, 5.0], [0.5, 15.0], [2.0, 25.0], [9.0, 20.0]], np.float32)
    out = model.predict(x, verbose=0)
    first = [0.0, 0.5 + 0, 1 + 10 * 0.5, 1 + 10 * 1]  # bin 1 then bin 2, each clipped to [0, 1]
    second = [0.0, 50.0, 100.0, 100.0]
    np.testing.assert_allclose(out, np.stack([first, second], axis=1), atol=1e-5)


class _EpochModel(SimpleNamespace):
    """A stand-in model for early-stopping callbacks: its weights are the number of the epoch they are from."""

    def get_weights(self):
        return [self.epoch]

    def set_weights(self, weights):
        self.restored = weights[0]


def _replay(callback, losses):
    """Feed ``losses`` to ``callback`` as each epoch's ``val_loss``: the epoch it stops at (None: it never
    does), its best epoch, and the epoch whose weights it restores at the end (None: none)."""
    model = _EpochModel(stop_training=False, epoch=0, restored=None)
    callback.set_model(model)
    callback.on_train_begin()
    stopped = None
    for epoch, loss in enumerate(losses):
        model.epoch = epoch
        callback.on_epoch_end(epoch, {"val_loss": float(loss)})
        if model.stop_training:
            stopped = epoch
            break
    callback.on_train_end()
    return stopped, callback.best_epoch, model.restored


def test_patience_counts_only_after_the_warm_up_and_the_best_epoch_may_be_a_warm_up_one():
    from questlearn.train._callbacks import EarlyStoppingAfterWarmup

    def stopped_at(callback, losses):
        return _replay(callback, losses)[:2]

    def plain(warmup, patience):  # the warm-up's rule alone, without the moving average (next test)
        return EarlyStoppingAfterWarmup(warmup, smoothing=0, patience=patience)

    rising = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert stopped_at(plain(0, 1), rising) == (1, 0)  # as Keras's EarlyStopping
    assert stopped_at(plain(3, 1), rising) == (3, 0)  # epochs 1 and 2 do not count
    assert stopped_at(plain(3, 2), [3.0, 2.0, 1.0, 1.5, 1.6, 1.7]) == (4, 2)
    assert stopped_at(plain(2, 0), [1.0, 2.0, 3.0]) == (2, 0)  # none stops inside it
    # with the moving average: a loss rising from the first epoch never lowers it either
    assert stopped_at(EarlyStoppingAfterWarmup(3, patience=1), rising) == (3, 0)


def test_patience_waits_while_the_moving_average_of_a_jumpy_loss_falls_and_stops_once_it_levels_off():
    """A validation loss that jumps by up to 80 % from epoch to epoch while it falls on average (as an hourly
    series of 8,759 rows does): the jumps alone stop the run early; the moving average's new lows keep it
    going until the average itself levels off. The weights restored are the best epoch's own; a loss that
    turns and rises stops the run a few epochs after Keras's ``EarlyStopping`` would; and a loss that has
    levelled off stops it, where an average allowed to reset the patience by any fall would not."""
    import keras

    from questlearn.errors import OptionError
    from questlearn.train._callbacks import EarlyStoppingAfterWarmup

    def run(callback, losses):
        """The epoch the run stops at (None: it never does) and the epoch whose weights it restores."""
        stopped, _, restored = _replay(callback, losses)
        return stopped, restored

    def keras_early_stopping(patience):
        return keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)

    def with_average(patience, **options):
        return EarlyStoppingAfterWarmup(0, patience=patience, restore_best_weights=True, **options)

    rng = np.random.default_rng(0)
    jumps = np.where(rng.random(80) < 0.3, 1.0, 1.0 + 0.8 * rng.random(80))
    jumpy = (0.3 + 2.0 * 0.9 ** np.arange(80)) * jumps
    assert run(keras_early_stopping(3), jumpy) == (6, 3)
    assert run(with_average(3, smoothing=0), jumpy) == (6, 3)  # the average off: as Keras's
    assert run(with_average(3), jumpy) == (36, int(np.argmin(jumpy[:37])))

    turning = np.concatenate([2.0 * 0.9 ** np.arange(20), 2.0 * 0.9 ** 19 * 1.1 ** np.arange(1, 30)])
    assert run(keras_early_stopping(3), turning) == (22, 19)
    assert run(with_average(3), turning) == (25, 19)

    # the validation loss of the convergence test's table (test_training_convergence.py), flat from epoch 37
    levelled = [0.7905, 0.615, 0.4527, 0.3043, 0.2284, 0.2, 0.1784, 0.1629, 0.1631, 0.1565, 0.1427, 0.1441,
                0.1349, 0.1299, 0.1238, 0.1173, 0.1194, 0.1239, 0.1213, 0.1189, 0.1208, 0.1163, 0.1165, 0.114,
                0.1162, 0.1198, 0.1117, 0.1131, 0.1093, 0.1107, 0.1108, 0.1108, 0.1116, 0.1105, 0.1101, 0.1094,
                0.1094, 0.1079, 0.1094, 0.1097, 0.1093, 0.1096, 0.1094, 0.1092, 0.1092, 0.1091, 0.1091]
    assert run(with_average(5), levelled) == (42, 37)
    assert run(with_average(5, min_fall=0), levelled) == (None, 37)  # the average's lag: tiny lows to the end
    with pytest.raises(OptionError, match="smoothing"):
        EarlyStoppingAfterWarmup(0, smoothing=1.0)


def test_the_training_step_is_traced_once_per_fit():
    """The optimizer is built with the network: an optimizer built inside the first traced step would make
    TensorFlow trace the whole step a second time before its next call."""
    import keras

    from questlearn.train.model import build_model

    network = build_model([0.0, 0.0], [1.0, 1.0], 2, code_counts=[], model="small")
    assert network.optimizer.built and network.optimizer.variables
    traced, step = [], network.train_step
    network.train_step = lambda data: traced.append(1) or step(data)  # runs only while a graph is traced
    network.steps_per_execution = 4
    rng = np.random.default_rng(0)
    x = {"numbers": rng.normal(size=(64, 2)).astype("float32")}
    network.fit(x, rng.integers(0, 2, 64), batch_size=8, epochs=2, verbose=0)
    if keras.backend.backend() == "tensorflow":  # a tf.function that created variables in its first trace: two
        assert len(traced) == 1
