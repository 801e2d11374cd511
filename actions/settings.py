"""Per-portal settings the shared steps read, with their defaults and the values each accepts."""

DEFAULT_SETTINGS = {
    "contact_matching": "sync_filters",
    "contact_sync_filters": [{"property": "email", "operator": "known"}],
    "display_name_conflicts": "disambiguate",
    "product_type": "Service",
    "income_account": "",
    "service_dates": "auto",
    "document_numbers": "quickbooks",
    "document_number_property": "",
}
