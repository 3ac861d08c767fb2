"""QA scorecards: forms an admin defines, and the arithmetic of scoring one.

A form is a list of criteria, each with a weight and maybe marked critical. A
trainer rates each criterion 0 (not met), 0.5 (partly) or 1 (met), or leaves a
non-critical one out (null: not applicable). The score is the weighted share of
what was rated, as a percentage::

    score = 100 * sum(weight * rating) / sum(weight of rated criteria)

A critical criterion rated below 1 fails the whole form: its score is 0 and it
counts as a critical fail, whatever the other ratings were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from server.errors import ProtocolError

__all__ = ["Criterion", "Scored", "parse_answers", "parse_criteria", "score"]

MAX_CRITERIA = 50
MAX_LABEL_CHARS = 200
MAX_WEIGHT = 100.0
RATINGS = (0.0, 0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Criterion:
    label: str
    weight: float
    critical: bool = False

    def wire(self) -> dict[str, Any]:
        return {"label": self.label, "weight": self.weight, "critical": self.critical}


@dataclass(frozen=True, slots=True)
class Scored:
    """A form's result: the percentage, and whether a critical item failed it."""

    score: float
    critical_failed: bool
    rated_weight: float


def parse_criteria(raw: Any) -> list[Criterion]:
    """Criteria from JSON, or ProtocolError saying what is wrong."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CRITERIA:
        raise _bad(f"'criteria' must list 1 to {MAX_CRITERIA} criteria.")
    criteria = []
    for number, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            raise _bad(f"Criterion {number} must be an object.")
        label, weight = item.get("label"), item.get("weight", 1)
        critical = item.get("critical", False)
        if not isinstance(label, str) or not 0 < len(label.strip()) <= MAX_LABEL_CHARS:
            raise _bad(
                f"Criterion {number} needs a label of 1-{MAX_LABEL_CHARS} chars."
            )
        if not _number(weight) or not 0 < weight <= MAX_WEIGHT:
            raise _bad(f"Criterion {number}: weight must be above 0 and at most 100.")
        if not isinstance(critical, bool):
            raise _bad(f"Criterion {number}: 'critical' must be true or false.")
        criteria.append(Criterion(label.strip(), float(weight), critical))
    return criteria


def parse_answers(criteria: list[Criterion], raw: Any) -> list[float | None]:
    """One rating per criterion (0, 0.5, 1 or null), or ProtocolError."""
    if not isinstance(raw, list) or len(raw) != len(criteria):
        raise _bad(f"'answers' must hold one rating per criterion ({len(criteria)}).")
    answers: list[float | None] = []
    for criterion, value in zip(criteria, raw, strict=True):
        if value is None:
            if criterion.critical:
                raise _bad(f"'{criterion.label}' is critical: it must be rated.")
            answers.append(None)
            continue
        if not _number(value) or float(value) not in RATINGS:
            raise _bad(f"'{criterion.label}': a rating is 0, 0.5, 1 or null.")
        answers.append(float(value))
    return answers


def score(criteria: list[Criterion], answers: list[float | None]) -> Scored:
    """The form's percentage; 0 with ``critical_failed`` when a critical item fails."""
    rated = [(c, a) for c, a in zip(criteria, answers, strict=True) if a is not None]
    total = sum(c.weight for c, _ in rated)
    if total <= 0:
        raise _bad("Rate at least one criterion.")
    if any(c.critical and a < 1.0 for c, a in rated):
        return Scored(0.0, True, total)
    earned = sum(c.weight * a for c, a in rated)
    return Scored(round(100.0 * earned / total, 1), False, total)


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _bad(reason: str) -> ProtocolError:
    return ProtocolError(reason, code="bad_request")
