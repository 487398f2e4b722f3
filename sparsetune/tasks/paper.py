"""The seven tasks of the paper, as the hub names them.

Splits, columns and labels are those of the Hugging Face `glue` and `super_glue`
builders, so `--data-dir` files exported from them and the hub agree row for row.
"""

from __future__ import annotations

from .base import Task
from .families import MultipleChoiceTask, SpanTask

GLUE = "nyu-mll/glue"
SUPER_GLUE = "aps/super_glue"

PAPER_TASKS: tuple[Task, ...] = (
    Task(
        name="cola",
        head="classification",
        text_fields=("sentence",),
        labels=("unacceptable", "acceptable"),
        metric="matthews",
        hub=(GLUE, "cola"),
        description="grammatical acceptability (single sentence)",
    ),
    Task(
        name="stsb",
        head="regression",
        text_fields=("sentence1", "sentence2"),
        metric="pearson_spearman",
        label_range=(0.0, 5.0),
        hub=(GLUE, "stsb"),
        description="semantic similarity 0-5 (sentence pair, regression)",
    ),
    Task(
        name="mrpc",
        head="classification",
        text_fields=("sentence1", "sentence2"),
        labels=("not_equivalent", "equivalent"),
        metric="accuracy_f1",
        hub=(GLUE, "mrpc"),
        description="paraphrase (sentence pair)",
    ),
    Task(
        name="rte",
        head="classification",
        text_fields=("sentence1", "sentence2"),
        labels=("entailment", "not_entailment"),
        metric="accuracy",
        hub=(GLUE, "rte"),
        description="textual entailment (sentence pair)",
    ),
    Task(
        name="cb",
        head="classification",
        text_fields=("premise", "hypothesis"),
        labels=("entailment", "contradiction", "neutral"),
        metric="accuracy_macro_f1",
        hub=(SUPER_GLUE, "cb"),
        description="three-way entailment (sentence pair)",
    ),
    MultipleChoiceTask(
        name="copa",
        head="multiple_choice",
        text_fields=("premise",),
        extra_fields=("choice1", "choice2", "question"),
        labels=("choice1", "choice2"),
        metric="accuracy",
        hub=(SUPER_GLUE, "copa"),
        description="causal reasoning (premise + question vs two choices)",
    ),
    SpanTask(
        name="wsc",
        head="classification",
        text_fields=("text",),
        extra_fields=("span1_index", "span2_index", "span1_text", "span2_text"),
        labels=("False", "True"),
        metric="accuracy",
        hub=(SUPER_GLUE, "wsc"),
        description="coreference of two marked spans",
    ),
)
