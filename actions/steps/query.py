"""Building QuickBooks queries safely: QuickBooks' query language has no parameters, only quoted literals."""


def literal(value: str) -> str:
    """A quoted string literal; backslash first, so the escape we add for a quote is not escaped again."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def literal_list(values) -> str:
    return "(" + ", ".join(literal(v) for v in values) + ")"
