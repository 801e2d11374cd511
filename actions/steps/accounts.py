"""Accounts an admin chose in an action: checked before anything is written, then remembered with their facts."""

from dataclasses import dataclass

from actions.errors import ActionError
from actions.steps.memory import TRUSTED, Memory, recall
from actions.steps.query import Question, Questions, literal

FUNDING_ACCOUNT_TYPES = ("Bank", "Credit Card", "Other Current Asset")
MAPPING = "account"  # remembered by the account's own id: its type, currency and name, once checked
FACTS = ("type", "currency", "name")


def chosen_account_id(ctx, field: str, label: str) -> str:
    """The account id chosen in the action's `field`; INVALID_INPUT when it is empty."""
    account_id = ctx.input(field)
    if not account_id:
        raise ActionError(
            "INVALID_INPUT",
            reason=f"The '{label}' field is empty: choose the QuickBooks bank or "
            "credit card account the money was paid from.",
        )
    return account_id


@dataclass
class AccountQuestion:
    account_id: str
    label: str
    remembered: dict | None = None  # the account as remembered once checked, written with unchecked
    found: Question | None = None


def ask_funding_account(ctx, field: str, label: str, questions: Questions, memory: Memory = TRUSTED) -> AccountQuestion:
    """The bank or credit card account money was paid from, as chosen in the action's `field`: remembered, or
    read with the other reads (only an active account answers the query)."""
    asked = AccountQuestion(chosen_account_id(ctx, field, label), label)
    if not asked.account_id.isdigit():
        return asked  # not an id at all: refused below
    recalled = recall(ctx, MAPPING, asked.account_id, FACTS)
    if recalled and not memory.trusts("account"):
        ctx.mappings.forget(MAPPING, asked.account_id)
        recalled = None
    if recalled and recalled[1] is not None:
        facts = recalled[1]
        asked.remembered = {"Id": asked.account_id, "AccountType": facts["type"], "Name": facts["name"]}
        if facts["currency"]:
            asked.remembered["CurrencyRef"] = {"value": facts["currency"]}
        return asked
    asked.found = questions.ask([f"SELECT * FROM Account WHERE Id = {literal(asked.account_id)}"])
    return asked


def funding_account(ctx, asked: AccountQuestion) -> dict:
    """The account, once asked: active and able to pay (bank, credit card), else INVALID_INPUT."""
    account = asked.remembered
    if account is None and asked.found is not None:
        [found] = asked.found.answers
        account = found[0] if found else None
    if not account or not account.get("Active", True):
        raise ActionError(
            "INVALID_INPUT",
            reason=f"The QuickBooks account {asked.account_id} chosen in the '{asked.label}' field does not exist "
            "or is inactive.",
        )
    if account.get("AccountType") not in FUNDING_ACCOUNT_TYPES:
        raise ActionError(
            "INVALID_INPUT",
            reason=f"The QuickBooks account '{account.get('Name')}' chosen in the "
            f"'{asked.label}' field is a {account.get('AccountType')} account; choose a bank or credit card "
            "account.",
        )
    if asked.remembered is None:
        currency = (account.get("CurrencyRef") or {}).get("value") or ""
        facts = {"type": account.get("AccountType"), "currency": currency, "name": account.get("Name", "")}
        ctx.mappings.remember(MAPPING, asked.account_id, asked.account_id, facts)
    return account


def purchase_payment_type(account: dict) -> str:
    """QuickBooks ties an expense's PaymentType to the kind of account that paid it."""
    return "CreditCard" if account.get("AccountType") == "Credit Card" else "Cash"
