"""Building QuickBooks queries safely, and asking several steps' queries in one request.

QuickBooks' query language has no parameters, only quoted literals. A /batch holds up to 30 queries: the reads a
document needs before it is written (its customer, its items) travel together, one QuickBooks request.
"""

from collections.abc import Callable
from dataclasses import dataclass

from actions.errors import QuickBooksFault

NOT_QUERYABLE = 4001
BATCH_LIMIT = 30  # queries per /batch (QuickBooks answers 1040 over it)


def literal(value: str) -> str:
    """A quoted string literal; backslash first, so the escape we add for a quote is not escaped again."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def literal_list(values) -> str:
    return "(" + ", ".join(literal(v) for v in values) + ")"


@dataclass
class Question:
    """Some queries one step asks; `answers` (one list of records per query) once the questions were sent."""

    selects: list[str]
    # Answers to use when QuickBooks refuses one of the queries as not queryable (4001): a step's other way.
    fallback: Callable[[], list[list[dict]]] | None = None
    answers: list[list[dict]] | None = None


class Questions:
    """The queries several steps need before anything is written, sent together in one QuickBooks request."""

    def __init__(self):
        self.asked: list[Question] = []

    def ask(self, selects: list[str], *, fallback: Callable[[], list[list[dict]]] | None = None) -> Question:
        question = Question(list(selects), fallback, None if selects else [])
        if selects:
            self.asked.append(question)
        return question

    def send(self, ctx) -> None:
        """Ask every question not answered yet: one request (one /batch, or one query when alone)."""
        waiting = [question for question in self.asked if question.answers is None]
        try:
            answer(ctx, waiting)
        except QuickBooksFault as fault:
            others = [question for question in waiting if question.fallback is None]
            if fault.code != NOT_QUERYABLE or len(others) == len(waiting):
                raise
            # Some companies refuse a filter (an email, say): those questions are answered their other way.
            for question in waiting:
                if question.fallback is not None:
                    question.answers = question.fallback()
            answer(ctx, others)


def answer(ctx, questions: list[Question]) -> None:
    selects = [select for question in questions for select in question.selects]
    answers: list[list[dict]] = []
    for start in range(0, len(selects), BATCH_LIMIT):
        answers += ctx.books.query_batch(selects[start : start + BATCH_LIMIT])
    found = iter(answers)
    for question in questions:
        question.answers = [next(found) for _ in question.selects]
