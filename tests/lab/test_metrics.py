"""Metric tables against small cases worked out by hand."""

import math

import pytest
import torch

from gradwatch.lab.metrics import classification_report, regression_report


def test_binary_case_by_hand():
    # true 1 1 1 0 0, predicted 1 0 1 1 0: TP=2 FN=1 FP=1 TN=1
    r = classification_report([1, 1, 1, 0, 0], [1, 0, 1, 1, 0])
    assert r["confusion_matrix"] == [[1, 1], [1, 2]] and r["labels"] == [0, 1]
    assert r["accuracy"] == pytest.approx(3 / 5)
    assert r["binary"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    # class 0: P = 1/2, R = 1/2; class 1: P = 2/3, R = 2/3
    assert r["macro"]["precision"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert r["macro"]["f1"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # micro-averaging over all classes equals accuracy for single-label problems
    assert r["micro"] == pytest.approx({"precision": 3 / 5, "recall": 3 / 5, "f1": 3 / 5})


def test_multiclass_with_a_class_never_predicted():
    r = classification_report(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 2, 2, 2]), labels=range(4))
    assert r["confusion_matrix"] == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 2, 0], [0, 0, 0, 0]]
    assert "binary" not in r and r["support"] == 4
    # per class P: 1, 0, 2/3, 0 → macro over the 4 labels
    assert r["macro"]["precision"] == pytest.approx((1 + 0 + 2 / 3 + 0) / 4)
    assert r["macro"]["recall"] == pytest.approx((1 + 0 + 1 + 0) / 4)


def test_regression_case_by_hand():
    r = regression_report([3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0])
    mse = (0.25 + 0.25 + 0 + 1) / 4
    assert r["mse"] == pytest.approx(mse) and r["rmse"] == pytest.approx(math.sqrt(mse))
    assert r["mae"] == pytest.approx((0.5 + 0.5 + 0 + 1) / 4)
    mean = (3 - 0.5 + 2 + 7) / 4
    ss_tot = sum((v - mean) ** 2 for v in (3.0, -0.5, 2.0, 7.0))
    assert r["r2"] == pytest.approx(1 - mse * 4 / ss_tot)


def test_predicting_the_mean_has_r2_zero():
    y = [1.0, 2.0, 3.0, 4.0]
    assert regression_report(y, [2.5] * 4)["r2"] == pytest.approx(0.0)
