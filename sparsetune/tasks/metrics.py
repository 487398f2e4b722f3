"""Task metrics as the paper's evaluation code (jiant) reports them.

The paper's Table 1: CoLA Matthews; STS-B the mean of Pearson
and Spearman; MRPC the mean of accuracy and F1; CB the mean of accuracy and macro-F1;
RTE, COPA and WSC accuracy. Every metric returns its components *and* `score`, the
paper's single number, so model selection, tables and reports all read one key.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], dict[str, float]]

METRICS: dict[str, MetricFn] = {}
METRIC_COMPONENTS: dict[str, tuple[str, ...]] = {}


def _metric(name: str, components: tuple[str, ...]):
    def register(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        METRIC_COMPONENTS[name] = components
        return fn

    return register


@_metric("matthews", ("mcc",))
def matthews(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import matthews_corrcoef  # metrics load their libraries on first use (fast CLI start)

    mcc = float(matthews_corrcoef(labels, predictions))
    return {"mcc": mcc, "score": mcc}


@_metric("pearson_spearman", ("pearson", "spearman"))
def pearson_spearman(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    # A constant prediction has no correlation; scipy warns and returns nan. Report 0
    # so that a collapsed model ranks last instead of poisoning means with nan.
    if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
        pearson = spearman = 0.0
    else:
        from scipy.stats import pearsonr, spearmanr

        pearson = float(pearsonr(predictions, labels)[0])
        spearman = float(spearmanr(predictions, labels)[0])
    return {"pearson": pearson, "spearman": spearman, "score": (pearson + spearman) / 2}


@_metric("accuracy_f1", ("accuracy", "f1"))
def accuracy_f1(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    accuracy = float(accuracy_score(labels, predictions))
    f1 = float(f1_score(labels, predictions, zero_division=0))
    return {"accuracy": accuracy, "f1": f1, "score": (accuracy + f1) / 2}


@_metric("accuracy_macro_f1", ("accuracy", "macro_f1"))
def accuracy_macro_f1(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    accuracy = float(accuracy_score(labels, predictions))
    macro_f1 = float(f1_score(labels, predictions, average="macro", zero_division=0))
    return {"accuracy": accuracy, "macro_f1": macro_f1, "score": (accuracy + macro_f1) / 2}


@_metric("accuracy", ("accuracy",))
def accuracy(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score

    value = float(accuracy_score(labels, predictions))
    return {"accuracy": value, "score": value}
