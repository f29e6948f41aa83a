"""Batch size, epochs and patience follow the data size; the user's values win; the plan is printed."""

import numpy as np

from questlearn.train._defaults import TARGET_STEPS, training_plan


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
