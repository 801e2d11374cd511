"""ask_items / match_items / create_missing_items: a QuickBooks Item for every line item, in one QuickBooks request.

Three parts, so a sales document can check everything before it writes anything: `ask_items` adds its queries to
the document's reads (none for a line whose product is remembered with its facts), `match_items` reads the
answers (and fails with PRODUCT_NOT_FOUND when it may not create), `create_missing_items` writes.
"""

from dataclasses import dataclass, field

from actions.errors import ActionError, QuickBooksFault
from actions.steps.memory import TRUSTED, Memory, recall
from actions.steps.query import Question, Questions, literal, literal_list
from actions.steps.source import Record

ITEM_TYPES = ("Service", "NonInventory")
DUPLICATE_NAME = 6240
FACTS = ("taxable",)  # what a remembered Item is written with: whether it is taxable (US sales tax)


@dataclass
class ItemMatch:
    matched: dict[str, dict] = field(default_factory=dict)  # line item id → QuickBooks Item
    unmatched: list[Record] = field(default_factory=list)
    line_items: list[Record] = field(default_factory=list)
    from_memory: set[str] = field(default_factory=set)  # line item ids matched to a remembered Item, unchecked


@dataclass
class ItemQuestions:
    line_items: list[Record]
    trusted: dict[str, dict]  # HubSpot product id → the Item as remembered, written with unchecked
    checked: dict[str, str]  # HubSpot product id → a remembered Item id to check in QuickBooks
    by_id: Question
    by_sku: Question
    by_name: Question


def ask_items(ctx, line_items: list[Record], questions: Questions, memory: Memory = TRUSTED) -> ItemQuestions:
    """Remembered products with their facts need no question; the other lines are matched by remembered id
    (still active?), then SKU exactly, then name in any case."""
    trusted, checked = {}, {}
    for product in sorted({line.get("hs_product_id") for line in line_items if line.get("hs_product_id")}):
        recalled = recall(ctx, "product", product, FACTS)
        if not recalled:
            continue
        item_id, facts = recalled
        if facts is not None and memory.trusts("item"):
            trusted[product] = {"Id": item_id, "Taxable": bool(facts["taxable"]), "Active": True}
        else:
            checked[product] = item_id
    unknown = [line for line in line_items if line.get("hs_product_id") not in trusted]
    ids = sorted(set(checked.values()))
    skus = sorted({line.get("hs_sku") for line in unknown if line.get("hs_sku")})
    names = sorted({line.get("name") for line in unknown if line.get("name")})
    return ItemQuestions(
        line_items=list(line_items),
        trusted=trusted,
        checked=checked,
        by_id=questions.ask([f"SELECT * FROM Item WHERE Id IN {literal_list(ids)} MAXRESULTS 1000"] if ids else []),
        by_sku=questions.ask([f"SELECT * FROM Item WHERE Sku IN {literal_list(skus)} MAXRESULTS 1000"] if skus else []),
        by_name=questions.ask(
            [f"SELECT * FROM Item WHERE Name IN {literal_list(names)} MAXRESULTS 1000"] if names else []
        ),
    )


def match_items(ctx, asked: ItemQuestions) -> ItemMatch:
    """Every line's Item from the answers (remembered product, then SKU exactly, then name in any case);
    PRODUCT_NOT_FOUND names the misses unless we may create them."""
    by_id = {str(i["Id"]): i for answer in asked.by_id.answers for i in answer}
    by_sku = index([i for answer in asked.by_sku.answers for i in answer], "Sku")
    by_name = index([i for answer in asked.by_name.answers for i in answer], "Name", fold=True)
    result = ItemMatch(line_items=list(asked.line_items))
    forgotten: set[str] = set()
    for line in asked.line_items:
        product = line.get("hs_product_id")
        if product in asked.trusted:
            result.matched[line.id] = asked.trusted[product]
            result.from_memory.add(line.id)
            continue
        item = checked_item(ctx, product, asked.checked, by_id, forgotten) or match_line(line, by_sku, by_name)
        if item:
            result.matched[line.id] = item
        else:
            result.unmatched.append(line)
    if result.unmatched and not wants_missing_created(ctx):
        raise ActionError("PRODUCT_NOT_FOUND", lines=", ".join(describe(line) for line in result.unmatched))
    return result


def create_missing_items(ctx, match: ItemMatch) -> dict[str, dict]:
    matched = dict(match.matched)
    if match.unmatched:
        income_account = income_account_id(ctx)
        created: dict[str, dict] = {}  # two lines of one new product share one Item
        for line in match.unmatched:
            key = item_name(line).casefold()  # QuickBooks item names are unique, whatever their case
            if key not in created:
                created[key] = create_item(ctx, line, income_account)
            matched[line.id] = created[key]
    for line in match.line_items:
        if line.get("hs_product_id"):
            item = matched[line.id]
            ctx.mappings.remember(
                "product", line.get("hs_product_id"), str(item["Id"]), {"taxable": bool(item.get("Taxable"))}
            )
    return matched


def index(items: list[dict], key: str, fold: bool = False) -> dict[str, dict]:
    table = {}
    for item in sorted(items, key=lambda i: int(i["Id"])):
        value = item.get(key) or ""
        table.setdefault(value.casefold() if fold else value, item)
    return table


def checked_item(ctx, product: str, checked: dict[str, str], by_id: dict[str, dict], forgotten: set[str]):
    """The remembered Item of a product, as QuickBooks has it, if still active; else forgotten (and noted once)."""
    item_id = checked.get(product) if product else None
    if not item_id:
        return None
    item = by_id.get(item_id)
    if item and item.get("Active", True):
        return item
    if product not in forgotten:
        forgotten.add(product)
        ctx.mappings.forget("product", product)  # the remembered Item is gone or inactive: match again
        ctx.journal.note(
            f"QuickBooks product {item_id}, remembered for HubSpot product {product}, is gone or "
            "inactive; matching the line item again."
        )
    return None


def match_line(line: Record, by_sku: dict[str, dict], by_name: dict[str, dict]) -> dict | None:
    # QuickBooks compares strings without case; a SKU must match exactly, so the index is by exact SKU.
    return by_sku.get(line.get("hs_sku")) or by_name.get(line.get("name").casefold())


def wants_missing_created(ctx) -> bool:
    return ctx.input("create_missing_products", "false").lower() in ("true", "yes", "1")


def income_account_id(ctx) -> str:
    configured = ctx.settings.get("income_account")
    if configured:
        return str(configured)
    accounts = ctx.books.query("SELECT * FROM Account WHERE AccountType = 'Income' AND Active = true")
    if not accounts:
        raise ActionError("INVALID_INPUT", reason="QuickBooks has no active Income account for new products.")
    return str(min(accounts, key=lambda a: int(a["Id"]))["Id"])


def create_item(ctx, line: Record, income_account: str) -> dict:
    item_type = str(ctx.settings.get("product_type") or "Service")
    body = {
        "Name": item_name(line),
        "Type": item_type if item_type in ITEM_TYPES else "Service",
        "IncomeAccountRef": {"value": income_account},
    }
    if line.get("hs_sku"):
        body["Sku"] = line.get("hs_sku")
    if line.get("price"):
        body["UnitPrice"] = float(line.get("price"))
    if line.get("description"):
        body["Description"] = line.get("description")[:4000]
    step = f"item:{line.get('hs_product_id') or line.get('hs_sku') or body['Name']}"
    try:
        item = ctx.books.create("Item", body, request_id=ctx.request_id(step))
    except QuickBooksFault as fault:
        if fault.code != DUPLICATE_NAME:
            raise
        item = item_named(ctx, line, body["Name"])  # created meanwhile, or an inactive product holds the name
    ctx.journal.wrote(step, "Item", item)
    return item


def item_named(ctx, line: Record, name: str) -> dict:
    holders = ctx.books.query(f"SELECT * FROM Item WHERE Name = {literal(name)} AND Active IN (true, false)")
    active = [item for item in holders if item.get("Active", True)]
    if active:
        return min(active, key=lambda i: int(i["Id"]))
    raise ActionError(
        "PRODUCT_NOT_FOUND",
        lines=f"{describe(line)}, whose name is held by an inactive QuickBooks "
        "product (make that product active again, or rename it)",
    )


def item_name(line: Record) -> str:
    # QuickBooks item names: at most 100 characters, no colon, tab or newline.
    name = line.get("name") or line.get("hs_sku") or f"HubSpot product {line.get('hs_product_id') or line.id}"
    return " ".join(name.replace(":", " ").split())[:100]


def describe(line: Record) -> str:
    sku = f" (SKU {line.get('hs_sku')})" if line.get("hs_sku") else ""
    return f"'{line.get('name') or line.id}'{sku}"
