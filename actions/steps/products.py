"""match_items / create_missing_items: a QuickBooks Item for every line item, matched in one QuickBooks request.

Two halves, so a sales document can check everything before it writes anything: `match_items` only reads
(and fails with PRODUCT_NOT_FOUND when it may not create), `create_missing_items` writes.
"""

from dataclasses import dataclass, field

from actions.errors import ActionError, QuickBooksFault
from actions.steps.query import literal, literal_list
from actions.steps.source import Record

ITEM_TYPES = ("Service", "NonInventory")
DUPLICATE_NAME = 6240


@dataclass
class ItemMatch:
    matched: dict[str, dict] = field(default_factory=dict)  # line item id → QuickBooks Item
    unmatched: list[Record] = field(default_factory=list)
    line_items: list[Record] = field(default_factory=list)


def match_items(ctx, line_items: list[Record]) -> ItemMatch:
    """Match every line in one QuickBooks request (remembered product, then SKU exactly, then name in any case);
    PRODUCT_NOT_FOUND names the misses unless we may create them."""
    remembered = {
        line.get("hs_product_id"): ctx.mappings.get("product", line.get("hs_product_id"))
        for line in line_items
        if line.get("hs_product_id")
    }
    by_id, by_sku, by_name = fetch_candidates(ctx, line_items, remembered)
    result = ItemMatch(line_items=list(line_items))
    for line in line_items:
        item = match_line(ctx, line, remembered, by_id, by_sku, by_name)
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
            ctx.mappings.remember("product", line.get("hs_product_id"), str(matched[line.id]["Id"]))
    return matched


def fetch_candidates(ctx, line_items: list[Record], remembered: dict[str, str | None]):
    remembered_ids = sorted({item_id for item_id in remembered.values() if item_id})
    skus = sorted({line.get("hs_sku") for line in line_items if line.get("hs_sku")})
    names = sorted({line.get("name") for line in line_items if line.get("name")})
    queries = []
    if remembered_ids:
        queries.append(f"SELECT * FROM Item WHERE Id IN {literal_list(remembered_ids)} MAXRESULTS 1000")
    if skus:
        queries.append(f"SELECT * FROM Item WHERE Sku IN {literal_list(skus)} MAXRESULTS 1000")
    if names:
        queries.append(f"SELECT * FROM Item WHERE Name IN {literal_list(names)} MAXRESULTS 1000")
    answers = iter(ctx.books.query_batch(queries)) if queries else iter(())
    by_id = {str(i["Id"]): i for i in next(answers)} if remembered_ids else {}
    by_sku = index(next(answers), "Sku") if skus else {}
    by_name = index(next(answers), "Name", fold=True) if names else {}
    return by_id, by_sku, by_name


def index(items: list[dict], key: str, fold: bool = False) -> dict[str, dict]:
    table = {}
    for item in sorted(items, key=lambda i: int(i["Id"])):
        value = item.get(key) or ""
        table.setdefault(value.casefold() if fold else value, item)
    return table


def match_line(ctx, line: Record, remembered, by_id, by_sku, by_name) -> dict | None:
    product = line.get("hs_product_id")
    item_id = remembered.get(product) if product else None
    if item_id:
        item = by_id.get(item_id)
        if item and item.get("Active", True):
            return item
        ctx.mappings.forget("product", product)  # the remembered Item is gone or inactive: match again
        ctx.journal.note(
            f"QuickBooks product {item_id}, remembered for HubSpot product {product}, is gone or "
            "inactive; matching the line item again."
        )
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
