"""Metrics against values computed by hand."""

import math

import numpy as np
import pytest

from sparsetune.tasks.metrics import METRICS


def test_accuracy_by_hand():
    result = METRICS["accuracy"](np.array([1, 0, 1, 1]), np.array([1, 1, 1, 0]))
    assert result == {"accuracy": 0.5, "score": 0.5}


def test_accuracy_f1_by_hand():
    # tp=2, fp=1, fn=1 -> precision 2/3, recall 2/3, f1 2/3; accuracy 3/5
    result = METRICS["accuracy_f1"](np.array([1, 1, 1, 0, 0]), np.array([1, 1, 0, 1, 0]))
    assert result["accuracy"] == pytest.approx(0.6)
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["score"] == pytest.approx((0.6 + 2 / 3) / 2)


def test_macro_f1_by_hand():
    # class 0: p=1, r=1/2 -> 2/3; class 1: p=1/2, r=1 -> 2/3; class 2: p=r=1 -> 1
    predictions, labels = np.array([0, 1, 1, 2]), np.array([0, 0, 1, 2])
    result = METRICS["accuracy_macro_f1"](predictions, labels)
    assert result["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["score"] == pytest.approx((0.75 + (2 / 3 + 2 / 3 + 1) / 3) / 2)


def test_matthews_by_hand():
    # tp=1 tn=1 fp=1 fn=1 -> (1*1 - 1*1) / sqrt(2*2*2*2) = 0; and perfect -> 1
    assert METRICS["matthews"](np.array([1, 0, 1, 0]), np.array([1, 0, 0, 1]))["mcc"] == pytest.approx(0.0)
    assert METRICS["matthews"](np.array([1, 0, 1]), np.array([1, 0, 1]))["score"] == pytest.approx(1.0)
    # tp=2 tn=1 fp=1 fn=0 -> (2*1 - 1*0)/sqrt(3*2*2*1) = 2/sqrt(12)
    result = METRICS["matthews"](np.array([1, 1, 1, 0]), np.array([1, 1, 0, 0]))
    assert result["mcc"] == pytest.approx(2 / math.sqrt(12))


def test_pearson_spearman_by_hand():
    predictions = np.array([1.0, 2.0, 3.0, 4.0])
    labels = np.array([1.0, 3.0, 2.0, 4.0])
    # Spearman on ranks (1,2,3,4) vs (1,3,2,4): 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*2/60 = 0.8
    # Pearson: same numbers as the ranks here -> 0.8 as well
    result = METRICS["pearson_spearman"](predictions, labels)
    assert result["spearman"] == pytest.approx(0.8)
    assert result["pearson"] == pytest.approx(0.8)
    assert result["score"] == pytest.approx(0.8)


def test_constant_prediction_scores_zero_not_nan():
    result = METRICS["pearson_spearman"](np.ones(4), np.array([1.0, 2.0, 3.0, 4.0]))
    assert result["score"] == 0.0
