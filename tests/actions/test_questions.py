"""Questions: a document's reads in one request, each query asked once, company settings kept between documents."""

from actions.errors import QuickBooksFault
from actions.steps.query import NOT_QUERYABLE, Questions

PREFERENCES = "SELECT * FROM Preferences"
BY_EMAIL = "SELECT * FROM Customer WHERE PrimaryEmailAddr = 'ann@acme.test'"
NAMES = "SELECT * FROM Vendor WHERE DisplayName IN ('Ann Lee')"


class RecordingBooks:
    """The two parts of the client Questions uses: query_batch (recorded) and the answers it keeps per company."""

    def __init__(self, refused: str = ""):
        self.requests: list[list[str]] = []
        self.kept: dict[str, list[dict]] = {}
        self.refused = refused  # a query QuickBooks refuses as not queryable (4001)

    def query_batch(self, selects: list[str]) -> list[list[dict]]:
        self.requests.append(list(selects))
        if self.refused in selects:
            raise QuickBooksFault(NOT_QUERYABLE, "Invalid query", "not queryable")
        return [[{"Id": str(n), "select": select}] for n, select in enumerate(selects)]

    def kept_answers(self, selects: list[str]) -> list[list[dict]] | None:
        return [self.kept[s] for s in selects] if all(s in self.kept for s in selects) else None

    def keep_answers(self, selects: list[str], answers: list[list[dict]]) -> None:
        self.kept.update(zip(selects, answers, strict=True))


def test_a_query_asked_twice_travels_once_and_asked_again_later_needs_no_request():
    books = RecordingBooks()
    questions = Questions(books)
    home, foreign = questions.ask([BY_EMAIL, NAMES]), questions.ask([BY_EMAIL])

    questions.send()
    again = questions.ask([NAMES, BY_EMAIL])
    questions.send()

    assert books.requests == [[BY_EMAIL, NAMES]]
    assert home.answers[0] == foreign.answers[0] == again.answers[1]
    assert again.answers == [home.answers[1], home.answers[0]]


def test_a_kept_question_is_asked_with_the_others_once_then_answered_from_what_the_client_keeps():
    books = RecordingBooks()
    first = Questions(books)
    preferences = first.ask([PREFERENCES], kept=True)
    first.ask([NAMES])
    first.send()

    second = Questions(books)
    kept = second.ask([PREFERENCES], kept=True)
    second.send()

    assert books.requests == [[PREFERENCES, NAMES]]
    assert kept.answers == preferences.answers
    assert list(books.kept) == [PREFERENCES]  # the lookups of one document are not kept for the next


def test_a_refused_query_asked_twice_is_answered_its_other_way_once():
    books = RecordingBooks(refused=BY_EMAIL)
    scans = []

    def scan():
        scans.append(1)
        return [[{"Id": "7"}]]

    questions = Questions(books)
    home, foreign = questions.ask([BY_EMAIL], fallback=scan), questions.ask([BY_EMAIL], fallback=scan)
    names = questions.ask([NAMES])
    questions.send()

    assert home.answers == foreign.answers == [[{"Id": "7"}]]
    assert len(scans) == 1
    assert books.requests == [[BY_EMAIL, NAMES], [NAMES]]
    assert names.answers == [[{"Id": "0", "select": NAMES}]]
