"""evaluate's ROC AUC: exact (ties one half), over the classes present, in bounded memory."""

import numpy as np
import pytest

from questlearn.serve._auc import StreamingAUC
from questlearn.serve.evaluate import _Tally
from questlearn.train.model import SparseAUC


def pairwise_auc(scores, positive):
    """The AUC straight from its definition: the share of (positive, negative) pairs ordered right, ties one half."""
    positive = np.asarray(positive, bool)
    positives, negatives = scores[positive].astype(np.float64), scores[~positive].astype(np.float64)
    above = ties = 0
    for start in range(0, len(positives), 256):
        difference = positives[start:start + 256, None] - negatives[None, :]
        above, ties = above + (difference > 0).sum(), ties + (difference == 0).sum()
    return (above + 0.5 * ties) / (len(positives) * len(negatives))


def tally(classes, probabilities, labels, block=3000):
    """evaluate's report on these model outputs, streamed in blocks as evaluate streams them."""
    counter = _Tally({"task": "classification", "classes": classes})
    for start in range(0, len(labels), block):
        counter.update(probabilities[start:start + block], labels[start:start + block])
    return counter.result()


def rare_class(rows=20_000, positives=10, seed=0):
    """A binary problem: ``positives`` rows of class 1 whose scores are crowded near 0, like everyone's."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(rows, np.int32)
    labels[rng.choice(rows, positives, replace=False)] = 1
    p1 = (rng.random(rows) * 1e-3 + labels * rng.random(rows) * 5e-4).astype(np.float32)
    return np.stack([1 - p1, p1], axis=1), labels


def keras_auc(classes, probabilities, labels):
    metric = SparseAUC(classes)
    metric.update_state(labels, probabilities)
    return float(metric.result())


@pytest.mark.timeout(900)
def test_evaluate_auc_is_exact_for_a_rare_class_where_keras_thresholds_are_off():
    probabilities, labels = rare_class()
    exact = pairwise_auc(probabilities[:, 1], labels == 1)
    assert abs(keras_auc(2, probabilities, labels) - exact) > 1e-2  # 0.5 against 0.609: every score under 1/199
    report = tally(["no", "yes"], probabilities, labels)
    assert report["auc"] == pytest.approx(exact, abs=1e-6)
    assert report["auc_max_error"] == 0.0 and report["auc_classes_absent"] == []
    assert report["auc_over"] == "the probability of class 'yes'"


@pytest.mark.timeout(900)
def test_evaluate_auc_leaves_out_and_names_classes_absent_from_the_scored_rows():
    rng = np.random.default_rng(3)
    classes = ["a", "b", "c", "d", "e"]
    labels = rng.choice([0, 1, 3], size=6000).astype(np.int32)  # no row of class 'c' nor 'e'
    logits = rng.normal(size=(6000, 5)) + 1.5 * np.eye(5)[labels]
    probabilities = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    exact = np.mean([pairwise_auc(probabilities[:, c], labels == c) for c in (0, 1, 3)])
    report = tally(classes, probabilities, labels)
    assert report["auc"] == pytest.approx(exact, abs=1e-6)
    assert report["auc_classes_absent"] == ["c", "e"]
    assert report["auc_over"] == "one-vs-rest over 3 of 5 classes; absent from the scored rows: 'c', 'e'"
    # Rows of one class only: no AUC (no negatives), said so rather than a number.
    alone = tally(classes, probabilities[labels == 1], labels[labels == 1])
    assert alone["auc"] is None and alone["auc_over"] == "undefined: the scored rows hold only class 'b'"
    assert alone["auc_classes_absent"] == ["a", "c", "d", "e"]


@pytest.mark.timeout(900)
def test_evaluate_auc_counts_tied_scores_one_half():
    labels = np.array([0, 1] * 500, np.int32)
    same = np.full((1000, 2), 0.5, np.float32)
    assert tally(["0", "1"], same, labels)["auc"] == 0.5
    # Positives all at 0.3002; negatives half tied with them, half just below: 1/2 * 1/2 + 1/2 * 1 = 0.75.
    # Keras's thresholds (steps of 1/199) see a single score and say 0.5.
    p1 = np.where(labels == 1, 0.3002, np.where(np.arange(1000) % 4 == 0, 0.3002, 0.3000)).astype(np.float32)
    probabilities = np.stack([1 - p1, p1], axis=1)
    assert pairwise_auc(p1, labels == 1) == 0.75
    assert abs(keras_auc(2, probabilities, labels) - 0.75) > 1e-2
    assert tally(["0", "1"], probabilities, labels)["auc"] == pytest.approx(0.75, abs=1e-12)


@pytest.mark.timeout(900)
def test_streaming_auc_past_its_exact_buffer_stays_within_the_error_it_reports():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 4, size=12_000).astype(np.int32)
    logits = rng.normal(size=(12_000, 4)) + np.eye(4)[labels] - 8 * (rng.random((12_000, 1)) < 0.5)
    probabilities = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    streamed = StreamingAUC(4, exact_cells=5_000)  # histograms from the first block on
    for start in range(0, 12_000, 1500):
        streamed.update(probabilities[start:start + 1500], labels[start:start + 1500])
    assert not streamed.exact
    for column, (auc, error) in enumerate(streamed.result()):
        exact = pairwise_auc(probabilities[:, column], labels == column)
        assert 0 < error < 1e-3 and abs(auc - exact) <= error, (column, auc, exact, error)
    # The NaN of a broken model is not hidden behind a number.
    probabilities[5, 2] = np.nan
    broken = StreamingAUC(4)
    broken.update(probabilities, labels)
    assert np.isnan(broken.result()[2][0]) and not np.isnan(broken.result()[1][0])
