"""The two task families that need more than 'tokenise these columns'.

COPA is multiple choice: each alternative is paired with the premise and the question
phrased as text, as the paper's code (jiant) does, and the model scores each pair.
WSC marks its two spans in the text by word index, so that a plain sequence
classifier sees which noun and pronoun are meant.

Design note (WSC; README "Design notes"): the paper's code pools the two span representations and
concatenates them before its classifier. We mark the spans with `*...*` (span1, the
noun) and `#...#` (span2, the pronoun) and use the ordinary sequence-classification
head instead, so that a fine-tuned WSC model is a plain transformers model that
`AutoModelForSequenceClassification` loads with no custom code. The markers are the
ones used for entity marking by Zhou & Chen 2021 ("typed entity markers").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Task

COPA_QUESTIONS = {
    "cause": "What was the cause of this?",
    "effect": "What happened as a result?",
}


@dataclass(frozen=True)
class MultipleChoiceTask(Task):
    """Premise + question against each choice; the head scores every pair."""

    choice_fields: tuple[str, ...] = ("choice1", "choice2")
    question_field: str = "question"

    def check_row(self, row: dict[str, Any]) -> str | None:
        problem = super().check_row(row)
        if problem is None and row[self.question_field] not in COPA_QUESTIONS:
            return f"{self.question_field} {row[self.question_field]!r} is not one of {sorted(COPA_QUESTIONS)}"
        return problem

    def texts(self, row: dict[str, Any]) -> list[tuple[str, ...]]:
        context = f"{row['premise']} {COPA_QUESTIONS[row[self.question_field]]}"
        return [(context, str(row[name])) for name in self.choice_fields]


def mark_spans(words: list[str], spans: list[tuple[int, int, str, str]]) -> str:
    """Wrap each (start, length, open, close) word span in its markers."""
    marked = list(words)
    for start, length, opener, closer in spans:
        end = start + length - 1
        marked[start] = opener + " " + marked[start]
        marked[end] = marked[end] + " " + closer
    return " ".join(marked)


@dataclass(frozen=True)
class SpanTask(Task):
    """Text with two spans located by word index (never by string match: the raw
    SuperGLUE WSC has span texts that differ from the sentence in case or punctuation)."""

    def _spans(self, row: dict[str, Any]) -> list[tuple[int, int, str, str]]:
        return [
            (int(row["span1_index"]), len(str(row["span1_text"]).split()), "*", "*"),
            (int(row["span2_index"]), len(str(row["span2_text"]).split()), "#", "#"),
        ]

    def check_row(self, row: dict[str, Any]) -> str | None:
        problem = super().check_row(row)
        if problem is not None:
            return problem
        for name in ("span1_index", "span2_index"):
            if not isinstance(row[name], int) or isinstance(row[name], bool):
                return f"field {name} must be a word index (an integer), got {row[name]!r}"
        words = str(row["text"]).split(" ")
        for start, length, _, _ in self._spans(row):
            if start < 0 or start + length > len(words):
                return f"span at word {start} (+{length}) is outside the text's {len(words)} words"
        return None

    def texts(self, row: dict[str, Any]) -> list[tuple[str, ...]]:
        return [(mark_spans(str(row["text"]).split(" "), self._spans(row)),)]
