"""resolve_items: a QuickBooks Item for every line item, in one QuickBooks request; create missing ones if allowed."""

from actions.errors import ActionError
from actions.steps.query import literal_list
from actions.steps.source import Record

ITEM_TYPES = ("Service", "NonInventory")


def resolve_items(ctx, line_items: list[Record]) -> dict[str, dict]:
    """Line item id → QuickBooks Item. Match: remembered product, then SKU (exact), then name (any case)."""
    by_id, by_sku, by_name = fetch_candidates(ctx, line_items)
    matched, unmatched = {}, []
    for line in line_items:
        item = match_line(ctx, line, by_id, by_sku, by_name)
        if item:
            matched[line.id] = item
        else:
            unmatched.append(line)
    if unmatched and not wants_missing_created(ctx):
        raise ActionError("PRODUCT_NOT_FOUND", lines=", ".join(describe(line) for line in unmatched))
    if unmatched:
        income_account = income_account_id(ctx)
        for line in unmatched:
            matched[line.id] = create_item(ctx, line, income_account)
    for line in line_items:
        if line.get("hs_product_id"):
            ctx.mappings.remember("product", line.get("hs_product_id"), str(matched[line.id]["Id"]))
    return matched


def fetch_candidates(ctx, line_items: list[Record]):
    remembered = {line.get("hs_product_id"): ctx.mappings.get("product", line.get("hs_product_id"))
                  for line in line_items if line.get("hs_product_id")}
    remembered_ids = sorted({item_id for item_id in remembered.values() if item_id})
    skus = sorted({line.get("hs_sku") for line in line_items if line.get("hs_sku")})
    names = sorted({line.get("name") for line in line_items if line.get("name")})
    queries = []
    if remembered_ids:
        queries.append(f"SELECT * FROM Item WHERE Id IN {literal_list(remembered_ids)}")
    if skus:
        queries.append(f"SELECT * FROM Item WHERE Sku IN {literal_list(skus)}")
    if names:
        queries.append(f"SELECT * FROM Item WHERE Name IN {literal_list(names)}")
    answers = iter(ctx.books.query_batch(queries)) if queries else iter(())
    items_by_id = {str(i["Id"]): i for i in next(answers)} if remembered_ids else {}
    by_remembered = {product: items_by_id[item_id] for product, item_id in remembered.items() if item_id in items_by_id}
    by_sku = index(next(answers), "Sku") if skus else {}
    by_name = index(next(answers), "Name", fold=True) if names else {}
    return by_remembered, by_sku, by_name


def index(items: list[dict], key: str, fold: bool = False) -> dict[str, dict]:
    table = {}
    for item in sorted(items, key=lambda i: int(i["Id"])):
        value = item.get(key) or ""
        table.setdefault(value.lower() if fold else value, item)
    return table


def match_line(ctx, line: Record, by_remembered, by_sku, by_name) -> dict | None:
    product = line.get("hs_product_id")
    if product and product in by_remembered and by_remembered[product].get("Active", True):
        return by_remembered[product]
    if product and ctx.mappings.get("product", product):
        ctx.mappings.forget("product", product)  # the remembered Item is gone or inactive
    # QuickBooks compares strings without case; a SKU must match exactly, so we check case here.
    return by_sku.get(line.get("hs_sku")) or by_name.get(line.get("name").lower())


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
    body = {"Name": item_name(line), "Type": item_type if item_type in ITEM_TYPES else "Service",
            "IncomeAccountRef": {"value": income_account}}
    if line.get("hs_sku"):
        body["Sku"] = line.get("hs_sku")
    if line.get("price"):
        body["UnitPrice"] = float(line.get("price"))
    if line.get("description"):
        body["Description"] = line.get("description")[:4000]
    key = line.get("hs_product_id") or line.get("hs_sku") or body["Name"]
    item = ctx.books.create("Item", body, request_id=ctx.request_id(f"item:{key}"))
    ctx.journal.wrote(f"item:{key}", "Item", item)
    return item


def item_name(line: Record) -> str:
    # QuickBooks item names: at most 100 characters, no colon, tab or newline.
    name = line.get("name") or line.get("hs_sku") or f"HubSpot product {line.get('hs_product_id') or line.id}"
    return " ".join(name.replace(":", " ").split())[:100]


def describe(line: Record) -> str:
    sku = f" (SKU {line.get('hs_sku')})" if line.get("hs_sku") else ""
    return f"'{line.get('name') or line.id}'{sku}"
