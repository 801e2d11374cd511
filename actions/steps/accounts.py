"""Accounts an admin chose in an action: read and checked before anything is written."""

from actions.errors import ActionError

FUNDING_ACCOUNT_TYPES = ("Bank", "Credit Card", "Other Current Asset")


def funding_account(ctx, field: str, label: str) -> dict:
    """The bank or credit card account money was paid from, as chosen in the action's `field`."""
    account_id = ctx.input(field)
    if not account_id:
        raise ActionError(
            "INVALID_INPUT",
            reason=f"The '{label}' field is empty: choose the QuickBooks bank or "
            "credit card account the money was paid from.",
        )
    account = ctx.books.read("Account", account_id) if account_id.isdigit() else None
    if not account or not account.get("Active", True):
        raise ActionError(
            "INVALID_INPUT",
            reason=f"The QuickBooks account {account_id} chosen in the '{label}' field does not exist or is inactive.",
        )
    if account.get("AccountType") not in FUNDING_ACCOUNT_TYPES:
        raise ActionError(
            "INVALID_INPUT",
            reason=f"The QuickBooks account '{account.get('Name')}' chosen in the "
            f"'{label}' field is a {account.get('AccountType')} account; choose a bank or credit card "
            "account.",
        )
    return account


def purchase_payment_type(account: dict) -> str:
    """QuickBooks ties an expense's PaymentType to the kind of account that paid it."""
    return "CreditCard" if account.get("AccountType") == "Credit Card" else "Cash"
