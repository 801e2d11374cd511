"""Building QuickBooks queries safely, and asking several steps' queries in one request.

QuickBooks' query language has no parameters, only quoted literals. A /batch holds up to 30 queries: the reads a
document needs before it is written (the company's preferences, its customer, its items) travel together, one
QuickBooks request.
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
    # About the company's settings or rarely changing lists, which the client keeps per company for a few minutes.
    kept: bool = False
    answers: list[list[dict]] | None = None


class Questions:
    """The queries several steps need before anything is written, sent together in one QuickBooks request.

    A query asked again is answered as it was the first time, without a request: a step that cannot tell yet what
    it will need (the customer's display names wait for the company's home currency) asks along everything it may
    need, then its exact queries once it can tell. A `kept` question is answered from what the client keeps when it
    can; otherwise it is asked with the others, and its answers are kept for the next documents.
    """

    def __init__(self, books):
        self.books = books
        self.asked: list[Question] = []
        self.answered: dict[str, list[dict]] = {}  # select → its answer, from this round of questions

    def ask(
        self, selects: list[str], *, fallback: Callable[[], list[list[dict]]] | None = None, kept: bool = False
    ) -> Question:
        question = Question(list(selects), fallback, kept)
        question.answers = self.known(question)
        if question.answers is None:
            self.asked.append(question)
        return question

    def known(self, question: Question) -> list[list[dict]] | None:
        """The question's answers without asking QuickBooks, if they are known."""
        if all(select in self.answered for select in question.selects):
            return [self.answered[select] for select in question.selects]
        return self.books.kept_answers(question.selects) if question.kept else None

    def send(self) -> None:
        """Ask every question not answered yet: one request (one /batch, or one query when alone), none if none."""
        waiting = [question for question in self.asked if question.answers is None]
        try:
            self.answer(waiting)
        except QuickBooksFault as fault:
            others = [question for question in waiting if question.fallback is None]
            if fault.code != NOT_QUERYABLE or len(others) == len(waiting):
                raise
            # Some companies refuse a filter (an email, say): those questions are answered their other way.
            for question in waiting:
                if question.fallback is not None:
                    self.settle(question, self.known(question) or question.fallback())
            self.answer(others)

    def answer(self, questions: list[Question]) -> None:
        selects = list(dict.fromkeys(select for question in questions for select in question.selects))
        answers: list[list[dict]] = []
        for start in range(0, len(selects), BATCH_LIMIT):
            answers += self.books.query_batch(selects[start : start + BATCH_LIMIT])
        self.answered.update(zip(selects, answers, strict=True))
        for question in questions:
            self.settle(question, [self.answered[select] for select in question.selects])

    def settle(self, question: Question, answers: list[list[dict]]) -> None:
        question.answers = answers
        self.answered.update(zip(question.selects, answers, strict=True))
        if question.kept:
            self.books.keep_answers(question.selects, answers)
