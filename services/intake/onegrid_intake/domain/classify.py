"""Rule-based category proposal from the description (Chinese keywords per category).

A category's score is the number of characters of its keywords found in the text: longer
keywords are stronger evidence ("建筑垃圾" beats "垃圾"). Confidence combines how much
evidence there is with how clearly the best category beats the next one, so a text that
fits two categories equally is left to an operator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from onegrid_intake.domain.ports import CategoryRule

# Characters of matched keywords that count as full evidence (two 2-character keywords).
FULL_EVIDENCE_CHARS = 4
DEFAULT_MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Proposal:
    category_code: str | None  # None: no category reached the threshold; an operator decides
    confidence: float  # of the best candidate, in [0, 1]
    best_candidate: str | None = None


def score(text: str, keywords: Iterable[str]) -> int:
    return sum(len(k) for k in keywords if k and k in text)


def classify(
    description: str,
    categories: Iterable[CategoryRule],
    *,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> Proposal:
    text = description.lower()
    scored = sorted(
        ((score(text, (k.lower() for k in c.keywords)), c.code) for c in categories if c.active),
        key=lambda sc: (-sc[0], sc[1]),
    )
    if not scored or scored[0][0] == 0:
        return Proposal(None, 0.0)
    best, code = scored[0]
    second = scored[1][0] if len(scored) > 1 else 0
    evidence = min(1.0, best / FULL_EVIDENCE_CHARS)
    margin = (best - second) / best
    confidence = round(evidence * margin, 3)
    if confidence < min_confidence:
        return Proposal(None, confidence, best_candidate=code)
    return Proposal(code, confidence, best_candidate=code)
