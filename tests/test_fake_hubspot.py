"""The HubSpot fake speaks HubSpot's wire formats and refuses what HubSpot refuses (plain `requests`)."""

import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.fakes.hubspot import FakeHubSpot

PORTAL = 101
OTHER_PORTAL = 202


@pytest.fixture
def fake():
    with FakeHubSpot() as server:
        yield server


@pytest.fixture
def token(fake):
    return fake.issue_tokens(PORTAL)["access_token"]


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def get(fake, path, token=None, **params):
    return requests.get(fake.url + path, params=params, headers=bearer(token) if token else {}, timeout=5)


def post(fake, path, body, token=None, **params):
    return requests.post(fake.url + path, json=body, params=params, headers=bearer(token) if token else {}, timeout=5)


def token_request(fake, path="/oauth/2026-03/token", **form):
    form = {"client_id": fake.client_id, "client_secret": fake.client_secret} | form
    return requests.post(fake.url + path, data=form, timeout=5)


# --- OAuth ------------------------------------------------------------------------------------------------


def authorize(fake, **overrides):
    query = {
        "client_id": fake.client_id,
        "redirect_uri": "http://localhost:5000/oauth/hubspot/callback",
        "scope": "oauth automation crm.objects.deals.read",
        "optional_scope": "crm.objects.invoices.read",
        "state": "s-1",
    } | overrides
    return requests.get(fake.url + "/oauth/authorize", params=query, allow_redirects=False, timeout=5)


def test_authorize_redirects_with_code_and_state_and_code_installs_into_next_portal(fake):
    fake.next_install_portal = 555
    response = authorize(fake)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    query = parse_qs(location.query)
    assert location.path == "/oauth/hubspot/callback" and query["state"] == ["s-1"]

    tokens = token_request(
        fake,
        grant_type="authorization_code",
        code=query["code"][0],
        redirect_uri="http://localhost:5000/oauth/hubspot/callback",
    ).json()
    info = get(fake, f"/oauth/v1/access-tokens/{tokens['access_token']}").json()

    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 1800
    assert info["hub_id"] == 555 and info["app_id"] == 4242 and info["token_type"] == "access"
    assert set(info["scopes"]) == {"oauth", "automation", "crm.objects.deals.read", "crm.objects.invoices.read"}


@pytest.mark.parametrize("overrides", [{"client_id": "someone-else"}, {"scope": "automation"}, {"redirect_uri": ""}])
def test_authorize_refuses_bad_requests(fake, overrides):
    assert authorize(fake, **overrides).status_code == 400


def code_from(fake):
    return parse_qs(urlsplit(authorize(fake).headers["Location"]).query)["code"][0]


@pytest.mark.parametrize("path", ["/oauth/2026-03/token", "/oauth/v1/token"])
def test_auth_code_is_single_use_on_both_token_paths(fake, path):
    form = {
        "grant_type": "authorization_code",
        "code": code_from(fake),
        "redirect_uri": "http://localhost:5000/oauth/hubspot/callback",
    }
    assert token_request(fake, path, **form).status_code == 200
    again = token_request(fake, path, **form)
    assert again.status_code == 400
    assert again.json() | {"correlationId": None} == {
        "status": "BAD_AUTH_CODE",
        "message": "missing or unknown auth code",
        "correlationId": None,
        "error": "invalid_grant",
        "error_description": "missing or unknown auth code",
    }


def test_code_exchange_needs_the_same_redirect_uri(fake):
    response = token_request(
        fake, grant_type="authorization_code", code=code_from(fake), redirect_uri="http://localhost:5000/elsewhere"
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "form, status, error",
    [
        ({"client_id": "nope"}, "BAD_CLIENT_ID", "invalid_client"),
        ({"client_secret": "nope"}, "BAD_CLIENT_SECRET", "invalid_client"),
        ({"refresh_token": "unknown"}, "BAD_REFRESH_TOKEN", "invalid_grant"),
    ],
)
def test_token_endpoint_errors(fake, form, status, error):
    refresh = fake.issue_tokens(PORTAL)["refresh_token"]
    response = token_request(fake, **({"grant_type": "refresh_token", "refresh_token": refresh} | form))
    assert response.status_code == 400
    assert (response.json()["status"], response.json()["error"]) == (status, error)


def test_token_endpoint_wants_a_form_body_not_json(fake):
    response = requests.post(
        fake.url + "/oauth/2026-03/token",
        timeout=5,
        json={
            "grant_type": "refresh_token",
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "refresh_token": fake.issue_tokens(PORTAL)["refresh_token"],
        },
    )
    assert response.status_code == 400 and fake.refresh_count == 0


def test_refresh_issues_new_access_token_and_keeps_refresh_token(fake):
    first = fake.issue_tokens(PORTAL)
    refreshed = token_request(fake, grant_type="refresh_token", refresh_token=first["refresh_token"]).json()
    assert refreshed["refresh_token"] == first["refresh_token"]
    assert refreshed["access_token"] != first["access_token"]
    assert fake.refresh_count == 1


def test_revoked_refresh_token_is_refused(fake):
    refresh = fake.issue_tokens(PORTAL)["refresh_token"]
    fake.revoke_refresh_token(refresh)
    response = token_request(fake, grant_type="refresh_token", refresh_token=refresh)
    assert response.json()["status"] == "BAD_REFRESH_TOKEN" and fake.refresh_count == 0


def test_token_metadata_unknown_and_expired(fake, token):
    assert get(fake, "/oauth/v1/access-tokens/nope").status_code == 404
    fake.expire_access_token(token)
    expired = get(fake, f"/oauth/v1/access-tokens/{token}")
    assert expired.status_code == 400 and expired.json()["status"] == "error"


# --- authentication on CRM calls ----------------------------------------------------------------------------


def test_crm_call_without_token_is_401_invalid_authentication(fake):
    deal = fake.portal(PORTAL).add("deals", {"dealname": "D"})
    response = get(fake, f"/crm/objects/2026-03/deals/{deal}")
    assert response.status_code == 401
    assert response.json()["category"] == "INVALID_AUTHENTICATION"
    assert response.json()["message"].startswith("Authentication credentials not found.")


def test_expired_token_is_401_expired_authentication(fake, token):
    deal = fake.portal(PORTAL).add("deals", {"dealname": "D"})
    fake.expire_access_token(token)
    body = get(fake, f"/crm/objects/2026-03/deals/{deal}", token).json()
    assert body["category"] == "EXPIRED_AUTHENTICATION"
    assert body["message"].startswith("The OAuth token used to make this call expired")


def test_token_only_sees_its_own_portal(fake, token):
    other_deal = fake.portal(OTHER_PORTAL).add("deals", {"dealname": "Theirs"}, id=9001)
    assert get(fake, f"/crm/objects/2026-03/deals/{other_deal}", token).status_code == 404


def test_missing_scope_is_403(fake):
    limited = fake.issue_tokens(PORTAL, scopes="oauth crm.objects.contacts.read")["access_token"]
    deal = fake.portal(PORTAL).add("deals", {"dealname": "D"})
    response = get(fake, f"/crm/objects/2026-03/deals/{deal}", limited)
    assert response.status_code == 403 and response.json()["category"] == "MISSING_SCOPES"


# --- object reads ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/crm/objects/2026-03/{type}/{id}", "/crm/v3/objects/{type}/{id}"])
def test_object_read_returns_requested_existing_properties_and_defaults(fake, token, path):
    deal = fake.portal(PORTAL).add("deals", {"dealname": "Website", "amount": 1200})
    response = get(fake, path.format(type="deals", id=deal), token, properties="dealname,amount,closedate,nope")
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"id", "properties", "createdAt", "updatedAt", "archived"}
    assert body["id"] == deal and body["archived"] is False
    assert body["properties"]["amount"] == "1200"  # HubSpot values are strings
    assert body["properties"]["closedate"] is None  # exists, unset
    assert "nope" not in body["properties"]  # unknown names are left out
    assert set(body["properties"]) == {
        "dealname",
        "amount",
        "closedate",
        "hs_object_id",
        "createdate",
        "hs_lastmodifieddate",
    }
    assert response.headers["X-HubSpot-RateLimit-Max"] == "110"


def test_contacts_use_lastmodifieddate_and_repeated_properties_params(fake, token):
    contact = fake.portal(PORTAL).add("contact", {"email": "ada@example.test", "firstname": "Ada"})
    response = requests.get(
        f"{fake.url}/crm/objects/2026-03/0-1/{contact}",
        headers=bearer(token),
        timeout=5,
        params=[("properties", "email"), ("properties", "firstname")],
    )
    assert set(response.json()["properties"]) == {
        "email",
        "firstname",
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
    }


def test_missing_object_is_404_object_not_found(fake, token):
    body = get(fake, "/crm/v3/objects/deals/404404", token).json()
    assert body["category"] == "OBJECT_NOT_FOUND"
    assert body["message"] == "Object not found.  objectId are usually numeric."


def test_unknown_object_type_is_400(fake, token):
    assert get(fake, "/crm/objects/2026-03/widgets/1", token).status_code == 400


def test_object_read_with_associations_uses_line_items_key_with_a_space(fake, token):
    portal = fake.portal(PORTAL)
    deal = portal.add("deals", {"dealname": "D"})
    line = portal.add("line_items", {"name": "Widget"})
    contact = portal.add("contacts", {"email": "a@example.test"})
    portal.associate("deals", deal, "line_items", line)
    portal.associate("deals", deal, "contacts", contact)
    body = get(fake, f"/crm/v3/objects/deals/{deal}", token, associations="line_items,contacts,quotes").json()
    assert body["associations"] == {
        "line items": {"results": [{"id": line, "type": "deal_to_line_item"}]},
        "contacts": {"results": [{"id": contact, "type": "deal_to_contact"}]},
    }


# --- batch reads -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/crm/objects/2026-03/line_items/batch/read", "/crm/v3/objects/line_items/batch/read"]
)
def test_batch_read_all_found_is_200(fake, token, path):
    portal = fake.portal(PORTAL)
    ids = [portal.add("line_items", {"name": f"L{n}", "price": n}) for n in range(3)]
    response = post(fake, path, {"properties": ["name", "price"], "inputs": [{"id": i} for i in ids]}, token)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "COMPLETE"
    assert sorted(r["id"] for r in body["results"]) == sorted(ids)
    assert "startedAt" in body and "completedAt" in body


def test_batch_read_with_unknown_ids_is_207_with_errors(fake, token):
    known = fake.portal(PORTAL).add("line_items", {"name": "L"})
    response = post(
        fake,
        "/crm/objects/2026-03/line_items/batch/read",
        {"properties": ["name"], "inputs": [{"id": known}, {"id": "999999"}]},
        token,
    )
    body = response.json()
    assert response.status_code == 207
    assert [r["id"] for r in body["results"]] == [known]
    assert body["numErrors"] == 1
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"] == {"ids": ["999999"]}
    assert body["errors"][0]["message"].startswith("Could not get some LINE_ITEM objects")


def test_batch_read_over_100_inputs_is_400(fake, token):
    response = post(
        fake,
        "/crm/objects/2026-03/line_items/batch/read",
        {"properties": [], "inputs": [{"id": str(n)} for n in range(101)]},
        token,
    )
    assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"


# --- associations ------------------------------------------------------------------------------------------


def deal_with_contacts(fake, count):
    portal = fake.portal(PORTAL)
    deal = portal.add("deals", {"dealname": "D"})
    contacts = [portal.add("contacts", {"email": f"c{n}@example.test"}) for n in range(count)]
    for contact in contacts:
        portal.associate("deals", deal, "contacts", contact)
    return deal, contacts


@pytest.mark.parametrize(
    "path",
    ["/crm/objects/2026-03/deals/{id}/associations/contacts", "/crm/v4/objects/deals/{id}/associations/contacts"],
)
def test_associations_list_shape_and_unsorted_order(fake, token, path):
    deal, contacts = deal_with_contacts(fake, 3)
    results = get(fake, path.format(id=deal), token).json()["results"]
    assert results[0] == {
        "toObjectId": int(contacts[-1]),
        "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}],
    }
    returned = [r["toObjectId"] for r in results]
    assert sorted(returned) == sorted(int(c) for c in contacts) and returned != sorted(returned)


def test_associations_are_stored_both_ways_with_hubspot_type_ids(fake):
    portal = fake.portal(PORTAL)
    payment = portal.add("commerce_payments", {"hs_initial_amount": "10"})
    contact = portal.add("contacts", {"email": "p@example.test"})
    portal.associate("commerce_payments", payment, "contacts", contact)
    token = fake.issue_tokens(PORTAL)["access_token"]
    forward = get(fake, f"/crm/v4/objects/commerce_payments/{payment}/associations/contacts", token).json()
    reverse = get(fake, f"/crm/v4/objects/contacts/{contact}/associations/0-101", token).json()
    assert forward["results"][0]["associationTypes"][0]["typeId"] == 387
    assert reverse["results"][0]["associationTypes"][0]["typeId"] == 388


def test_primary_company_carries_both_type_ids(fake, token):
    portal = fake.portal(PORTAL)
    deal, company = portal.add("deals", {}), portal.add("companies", {"name": "Acme"})
    portal.associate("deals", deal, "companies", company, label="Primary")
    types = get(fake, f"/crm/v4/objects/deals/{deal}/associations/companies", token).json()["results"][0]
    assert {(t["typeId"], t["label"]) for t in types["associationTypes"]} == {(341, None), (5, "Primary")}


def test_associations_page_with_after_cursor_and_limit_max_500(fake, token):
    deal, contacts = deal_with_contacts(fake, 5)
    path = f"/crm/objects/2026-03/deals/{deal}/associations/contacts"
    first = get(fake, path, token, limit=2).json()
    seen = [r["toObjectId"] for r in first["results"]]
    after = first["paging"]["next"]["after"]
    while after:
        page = get(fake, path, token, limit=2, after=after).json()
        seen += [r["toObjectId"] for r in page["results"]]
        after = page.get("paging", {}).get("next", {}).get("after")
    assert sorted(seen) == sorted(int(c) for c in contacts)
    assert get(fake, path, token, limit=501).status_code == 400


@pytest.mark.parametrize(
    "path", ["/crm/associations/2026-03/deals/contacts/batch/read", "/crm/v4/associations/deals/contacts/batch/read"]
)
def test_associations_batch_read_reports_ids_without_associations(fake, token, path):
    deal, contacts = deal_with_contacts(fake, 1)
    lonely = fake.portal(PORTAL).add("deals", {"dealname": "Alone"})
    response = post(fake, path, {"inputs": [{"id": deal}, {"id": lonely}]}, token)
    body = response.json()
    assert response.status_code == 207
    assert body["results"] == [
        {
            "from": {"id": deal},
            "to": [
                {
                    "toObjectId": int(contacts[0]),
                    "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}],
                }
            ],
        }
    ]
    assert body["errors"][0]["subCategory"] == "crm.associations.NO_ASSOCIATIONS_FOUND"
    assert body["errors"][0]["context"]["fromObjectId"] == [lonely]


# --- callback completion ----------------------------------------------------------------------------------

COMPLETE_2026 = "/automation/actions/callbacks/2026-03/{id}/complete"
COMPLETE_V4 = "/automation/v4/actions/callbacks/{id}/complete"
SUCCESS = {"outputFields": {"hs_execution_state": "SUCCESS", "quickbooks_document_id": "130"}, "typedOutputs": {}}


@pytest.mark.parametrize("path, version", [(COMPLETE_2026, "2026-03"), (COMPLETE_V4, "v4")])
def test_completion_is_204_and_recorded(fake, token, path, version):
    callback = fake.new_callback_id(PORTAL)
    response = post(fake, path.format(id=callback), SUCCESS, token)
    assert response.status_code == 204 and response.content == b""
    assert [(c.callback_id, c.output_fields, c.api_version) for c in fake.completions] == [
        (callback, SUCCESS["outputFields"], version)
    ]


def test_second_completion_is_refused_as_not_pending(fake, token):
    callback = fake.new_callback_id(PORTAL)
    post(fake, COMPLETE_2026.format(id=callback), SUCCESS, token)
    again = post(fake, COMPLETE_V4.format(id=callback), SUCCESS, token)
    assert again.status_code == 400
    assert again.json()["message"] == f"Callback {callback} is not in a pending state"
    assert len(fake.completions) == 1
    assert [a.status for a in fake.completion_attempts] == [204, 400]


@pytest.mark.parametrize(
    "body",
    [
        {"typedOutputs": {}},
        {"outputFields": {"hs_execution_state": "SUCCESS", "amount": 12}, "typedOutputs": {}},
        {"outputFields": {"hs_execution_state": "BLOCK"}, "typedOutputs": {}},
        {"outputFields": {"quickbooks_document_id": "1"}, "typedOutputs": {}},
        {"outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": []},
    ],
)
def test_invalid_completion_bodies_are_400_validation_error(fake, token, body):
    response = post(fake, COMPLETE_2026.format(id=fake.new_callback_id(PORTAL)), body, token)
    assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"
    assert fake.completions == [] and len(fake.completion_attempts) == 1


def test_typed_outputs_are_optional_unless_the_test_pins_them(fake, token):
    body = {"outputFields": {"hs_execution_state": "SUCCESS"}}
    assert post(fake, COMPLETE_2026.format(id=fake.new_callback_id(PORTAL)), body, token).status_code == 204
    fake.require_typed_outputs = True
    assert post(fake, COMPLETE_2026.format(id=fake.new_callback_id(PORTAL)), body, token).status_code == 400


def test_completion_with_another_portals_token_is_refused(fake, token):
    response = post(fake, COMPLETE_2026.format(id=fake.new_callback_id(OTHER_PORTAL)), SUCCESS, token)
    assert response.status_code in (401, 403) and fake.completions == []


def test_completion_needs_the_automation_scope(fake):
    limited = fake.issue_tokens(PORTAL, scopes=["oauth"])["access_token"]
    response = post(fake, COMPLETE_2026.format(id=fake.new_callback_id(PORTAL)), SUCCESS, limited)
    assert response.status_code == 403


@pytest.mark.parametrize(
    "path", ["/automation/actions/callbacks/2026-03/complete", "/automation/v4/actions/callbacks/complete"]
)
def test_batch_completion(fake, token, path):
    ids = [fake.new_callback_id(PORTAL) for _ in range(2)]
    response = post(fake, path, {"inputs": [SUCCESS | {"callbackId": i} for i in ids]}, token)
    assert response.status_code == 204
    assert [c.callback_id for c in fake.completions] == ids


def test_refused_batch_completes_nothing(fake, token):
    done = fake.new_callback_id(PORTAL)
    post(fake, COMPLETE_2026.format(id=done), SUCCESS, token)
    fresh = fake.new_callback_id(PORTAL)
    response = post(
        fake,
        "/automation/actions/callbacks/2026-03/complete",
        {"inputs": [SUCCESS | {"callbackId": fresh}, SUCCESS | {"callbackId": done}]},
        token,
    )
    assert response.status_code == 400
    assert fake.completion_for(fresh) is None


# --- fault injection and recording --------------------------------------------------------------------------


def test_fail_next_answers_matching_requests_then_recovers(fake, token):
    callback = fake.new_callback_id(PORTAL)
    fake.fail_next(status=503, times=2)
    statuses = [post(fake, COMPLETE_2026.format(id=callback), SUCCESS, token).status_code for _ in range(3)]
    assert statuses == [503, 503, 204]
    assert [a.status for a in fake.completion_attempts] == [503, 503, 204]
    assert len(fake.completions) == 1


def test_fail_next_429_with_retry_after_and_custom_match(fake, token):
    deal = fake.portal(PORTAL).add("deals", {"dealname": "D"})
    fake.fail_next("GET /crm/objects", status=429, headers={"Retry-After": "1"})
    throttled = get(fake, f"/crm/objects/2026-03/deals/{deal}", token)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    assert throttled.json()["errorType"] == "RATE_LIMIT"
    assert get(fake, f"/crm/objects/2026-03/deals/{deal}", token).status_code == 200


def test_requests_are_recorded(fake, token):
    post(fake, COMPLETE_2026.format(id=fake.new_callback_id(PORTAL)), SUCCESS, token, debug="1")
    [recorded] = fake.requests_to("POST", "/automation/actions/callbacks")
    assert recorded.json == SUCCESS and recorded.query == {"debug": "1"} and recorded.status == 204
    assert recorded.headers["authorization"] == f"Bearer {token}"


def test_concurrent_completions_of_one_callback_accept_exactly_one(fake, token):
    callback = fake.new_callback_id(PORTAL)
    statuses = []

    def complete():
        statuses.append(post(fake, COMPLETE_2026.format(id=callback), SUCCESS, token).status_code)

    threads = [threading.Thread(target=complete) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [204] + [400] * 7 and len(fake.completions) == 1


# --- action definitions ------------------------------------------------------------------------------------


def definition(**overrides):
    body = {
        "actionUrl": "https://qbo.example.test/hubspot/actions/create_invoice",
        "published": False,
        "objectTypes": ["DEAL"],
        "objectRequestOptions": {"properties": ["dealname"]},
        "inputFields": [
            {
                "isRequired": True,
                "supportedValueTypes": ["STATIC_VALUE"],
                "typeDefinition": {
                    "name": "payment_terms",
                    "type": "enumeration",
                    "fieldType": "select",
                    "optionsUrl": "https://qbo.example.test/hubspot/options/terms",
                },
            },
            {
                "isRequired": False,
                "supportedValueTypes": ["STATIC_VALUE", "OBJECT_PROPERTY"],
                "typeDefinition": {"name": "memo", "type": "string", "fieldType": "text"},
            },
        ],
        "inputFieldDependencies": [
            {
                "dependencyType": "CONDITIONAL_SINGLE_FIELD",
                "controllingFieldName": "payment_terms",
                "controllingFieldValue": "custom",
                "dependentFieldNames": ["memo"],
            }
        ],
        "outputFields": [
            {"typeDefinition": {"name": "quickbooks_document_id", "type": "string"}},
            {"typeDefinition": {"name": "total", "type": "currency_number"}},
        ],
        "labels": {
            "en": {
                "actionName": "Create QuickBooks invoice",
                "executionRules": {"noLines": "The deal has no line items."},
            }
        },
        "executionRules": [{"labelName": "noLines", "conditions": {"error_code": "NO_LINE_ITEMS"}}],
    }
    return body | overrides


def actions_path(version="2026-03", app_id=4242):
    return f"/automation/actions/2026-03/{app_id}" if version == "2026-03" else f"/automation/v4/actions/{app_id}"


def dev(fake):
    return {"hapikey": fake.developer_api_key}


@pytest.mark.parametrize("version", ["2026-03", "v4"])
def test_definition_create_get_patch_delete(fake, version):
    created = requests.post(fake.url + actions_path(version), json=definition(), params=dev(fake), timeout=5)
    assert created.status_code == 201
    stored = created.json()
    assert isinstance(stored["id"], str) and stored["revisionId"] == "1"
    assert fake.definitions[4242][stored["id"]]["actionUrl"] == definition()["actionUrl"]

    one = f"{fake.url}{actions_path(version)}/{stored['id']}"
    patched = requests.patch(one, json={"published": True}, params=dev(fake), timeout=5).json()
    assert patched["published"] is True and patched["revisionId"] == "2" and patched["labels"] == stored["labels"]

    listed = requests.get(fake.url + actions_path(version), params=dev(fake), timeout=5).json()
    assert [d["id"] for d in listed["results"]] == [stored["id"]]

    assert requests.delete(one, params=dev(fake), timeout=5).status_code == 204
    assert requests.get(one, params=dev(fake), timeout=5).status_code == 404
    archived = requests.get(fake.url + actions_path(version), params=dev(fake) | {"archived": "true"}, timeout=5)
    assert [d["id"] for d in archived.json()["results"]] == [stored["id"]]


def test_definitions_accept_a_developer_token_and_refuse_everything_else(fake, token):
    fake.developer_tokens.add("dev-token")
    url = fake.url + actions_path()
    assert requests.get(url, headers=bearer("dev-token"), timeout=5).status_code == 200
    assert requests.get(url, headers=bearer(token), timeout=5).status_code == 401
    assert requests.get(url, params={"hapikey": "wrong"}, timeout=5).status_code == 401
    assert requests.get(fake.url + actions_path(app_id=1), params=dev(fake), timeout=5).status_code == 404


def test_definitions_page_with_limit_and_after(fake):
    for _ in range(3):
        requests.post(fake.url + actions_path(), json=definition(), params=dev(fake), timeout=5)
    first = requests.get(fake.url + actions_path(), params=dev(fake) | {"limit": 2}, timeout=5).json()
    rest = requests.get(
        fake.url + actions_path(), timeout=5, params=dev(fake) | {"limit": 2, "after": first["paging"]["next"]["after"]}
    ).json()
    assert len(first["results"]) == 2 and len(rest["results"]) == 1 and "paging" not in rest


def input_field(**type_definition):
    return {
        "isRequired": False,
        "supportedValueTypes": ["STATIC_VALUE"],
        "typeDefinition": {"name": "x", "type": "string"} | type_definition,
    }


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"actionUrl": "ftp://example.test/x"}, "actionUrl"),
        ({"objectTypes": []}, "objectTypes"),
        ({"published": "yes"}, "published"),
        ({"labels": {"en": {}}}, "actionName"),
        ({"key": "create_invoice"}, 'Unrecognized field "key"'),
        ({"inputFields": [input_field(type="text")]}, "type must be one of"),
        ({"inputFields": [input_field(fieldType="dropdown")]}, "fieldType"),
        ({"inputFields": [input_field(type="enumeration")]}, "needs options or optionsUrl"),
        ({"inputFields": [input_field() | {"supportedValueTypes": ["FIELD_DATA"]}]}, "supportedValueTypes"),
        ({"inputFields": [input_field() | {"isRequired": "no"}]}, "isRequired"),
        ({"inputFields": [input_field(), input_field()]}, "unique"),
        ({"outputFields": [{"typeDefinition": {"name": "o", "type": "money"}}]}, "outputFields[0].typeDefinition"),
        (
            {
                "inputFieldDependencies": [
                    {
                        "dependencyType": "CONDITIONAL_SINGLE_FIELD",
                        "controllingFieldName": "payment_terms",
                        "dependentFieldNames": ["memo"],
                    }
                ]
            },
            "controllingFieldValue",
        ),
        (
            {
                "inputFieldDependencies": [
                    {
                        "dependencyType": "SINGLE_FIELD",
                        "controllingFieldName": "payment_terms",
                        "dependentFieldNames": ["ghost"],
                    }
                ]
            },
            "ghost",
        ),
        ({"executionRules": [{"labelName": "unknownRule", "conditions": {}}]}, "unknownRule"),
        ({"objectRequestOptions": {"properties": "dealname"}}, "objectRequestOptions"),
    ],
)
def test_invalid_definitions_are_400_with_hubspot_message(fake, overrides, reason):
    response = requests.post(fake.url + actions_path(), json=definition(**overrides), params=dev(fake), timeout=5)
    body = response.json()
    assert response.status_code == 400 and body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Invalid input JSON on line")
    assert any(reason in error["message"] for error in body["errors"]), body["errors"]
    assert fake.definitions[4242] == {}


def test_invalid_patch_leaves_the_definition_alone(fake):
    stored = requests.post(fake.url + actions_path(), json=definition(), params=dev(fake), timeout=5).json()
    one = f"{fake.url}{actions_path()}/{stored['id']}"
    response = requests.patch(one, json={"objectTypes": []}, params=dev(fake), timeout=5)
    assert response.status_code == 400
    assert fake.definitions[4242][stored["id"]]["revisionId"] == "1"


# --- Portal test API ---------------------------------------------------------------------------------------


def test_portal_accepts_type_ids_and_singular_names_and_refuses_duplicates(fake):
    portal = fake.portal(PORTAL)
    quote = portal.add("0-14", {"hs_title": "Q"}, id=77)
    assert portal.get("quote", quote)["properties"]["hs_title"] == "Q"
    assert portal.get("quotes", "404") is None
    with pytest.raises(ValueError):
        portal.add("quotes", {}, id=77)
    with pytest.raises(KeyError):
        portal.associate("quotes", quote, "contacts", "404")


def test_execution_request_has_hubspots_shape(fake):
    body = fake.execution_request(PORTAL, "deals", 904, {"payment_terms": "net30"})
    assert body["callbackId"].startswith(f"ap-{PORTAL}-")
    assert body["object"] == {"objectId": 904, "objectType": "DEAL"}
    assert body["origin"]["portalId"] == PORTAL and body["inputFields"] == {"payment_terms": "net30"}


def test_quotes_and_payments_carry_hubspot_association_ids_and_properties(fake, token):
    portal = fake.portal(PORTAL)
    quote = portal.add("quotes", {"hs_title": "Q", "hs_quote_number": "Q-17"})
    signer, buyer = portal.add("contacts", {"email": "s@x.test"}), portal.add("contacts", {"email": "b@x.test"})
    portal.associate("quotes", quote, "contacts", buyer)
    portal.associate("quotes", quote, "contacts", signer, type_id=702, label="Signer")
    payment = portal.add("commerce_payments", {"hs_initial_amount": "450", "hs_latest_status": "succeeded"})
    for parent in (("quotes", quote), ("commerce_payments", payment)):
        portal.associate(*parent, "line_items", portal.add("line_items", {"name": "Widget"}))

    def type_ids(path):
        results = get(fake, path, token).json()["results"]
        return {r["toObjectId"]: {t["typeId"] for t in r["associationTypes"]} for r in results}

    assert type_ids(f"/crm/objects/2026-03/quotes/{quote}/associations/contacts") == {
        int(buyer): {69},
        int(signer): {69, 702},
    }
    assert list(type_ids(f"/crm/objects/2026-03/quotes/{quote}/associations/line_items").values()) == [{67}]
    assert list(type_ids(f"/crm/objects/2026-03/commerce_payments/{payment}/associations/line_items").values()) == [
        {395}
    ]
    read = get(
        fake,
        f"/crm/objects/2026-03/commerce_payments/{payment}",
        token,
        properties="hs_initial_amount,hs_fees_amount,hs_payout_date,no_such_property",
    ).json()
    assert read["properties"]["hs_initial_amount"] == "450"
    assert read["properties"]["hs_fees_amount"] is None  # a known property, unset: null
    assert "no_such_property" not in read["properties"]  # unknown: left out


# --- Properties API: groups --------------------------------------------------------------------------------

PROPERTIES_PREFIXES = ["/crm/properties/2026-03", "/crm/v3/properties"]
WRITE_OBJECTS = [("deals", "dealinformation"), ("quotes", "quoteinformation"), ("commerce_payments", None)]


def patch(fake, path, body, token=None, **params):
    return requests.patch(fake.url + path, json=body, params=params, headers=bearer(token) if token else {}, timeout=5)


QUICKBOOKS_GROUP = {"name": "quickbooks", "label": "QuickBooks", "displayOrder": -1}


def text_property(name="quickbooks_invoice_id", **overrides):
    return {
        "name": name,
        "label": "QuickBooks invoice ID",
        "type": "string",
        "fieldType": "text",
        "groupName": "quickbooks",
        "description": "The id of the QuickBooks invoice created.",
    } | overrides


def status_property(name="quickbooks_invoice_status"):
    options = [{"label": v.capitalize(), "value": v, "displayOrder": i} for i, v in enumerate(("open", "paid"))]
    return text_property(name, label="Status", type="enumeration", fieldType="select", options=options)


def balance_property(name="quickbooks_invoice_balance"):
    return text_property(name, label="Balance", type="number", fieldType="number")


@pytest.mark.parametrize("prefix", PROPERTIES_PREFIXES)
@pytest.mark.parametrize("object_type, hubspot_group", WRITE_OBJECTS)
def test_groups_list_get_create_and_refuse_a_duplicate(fake, token, prefix, object_type, hubspot_group):
    groups = f"{prefix}/{object_type}/groups"
    listed = get(fake, groups, token)
    assert listed.status_code == 200
    (own,) = listed.json()["results"]
    assert set(own) == {"name", "label", "displayOrder", "archived"} and own["archived"] is False
    if hubspot_group:
        assert own["name"] == hubspot_group
    assert get(fake, f"{groups}/{own['name']}", token).json() == own

    missing = get(fake, f"{groups}/quickbooks", token)
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"

    created = post(fake, groups, QUICKBOOKS_GROUP, token)
    assert created.status_code == 201
    assert created.json() == {"name": "quickbooks", "label": "QuickBooks", "displayOrder": -1, "archived": False}
    assert created.headers["Location"] == f"{fake.url}{groups}/quickbooks"
    assert get(fake, f"{groups}/quickbooks", token).json() == created.json()
    assert [g["name"] for g in get(fake, groups, token).json()["results"]] == [own["name"], "quickbooks"]
    assert [g["name"] for g in fake.portal(PORTAL).property_groups(object_type)] == [own["name"], "quickbooks"]

    again = post(fake, groups, QUICKBOOKS_GROUP | {"label": "Other"}, token)
    assert again.status_code == 409
    assert again.json()["category"] == "OBJECT_ALREADY_EXISTS" and "quickbooks" in again.json()["message"]
    assert get(fake, f"{groups}/quickbooks", token).json()["label"] == "QuickBooks"  # unchanged


@pytest.mark.parametrize(
    "body",
    [
        {"name": "quickbooks"},  # label is required
        {"label": "QuickBooks"},  # name is required
        {"name": "QuickBooks", "label": "QuickBooks"},  # upper case
        {"name": "quick books", "label": "QuickBooks"},
        {"name": "quickbooks", "label": "QuickBooks", "color": "green"},  # not a PropertyGroupCreate field
        {"name": "quickbooks", "label": "QuickBooks", "displayOrder": "first"},
    ],
)
def test_invalid_group_is_400_and_creates_nothing(fake, token, body):
    response = post(fake, "/crm/v3/properties/deals/groups", body, token)
    assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"
    assert [g["name"] for g in fake.portal(PORTAL).property_groups("deals")] == ["dealinformation"]


def test_portal_define_group_makes_a_group_exist(fake, token):
    fake.portal(PORTAL).define_group("quotes", "quickbooks", "QuickBooks")
    assert get(fake, "/crm/properties/2026-03/quotes/groups/quickbooks", token).json()["label"] == "QuickBooks"
    assert post(fake, "/crm/properties/2026-03/quotes/groups", QUICKBOOKS_GROUP, token).status_code == 409


# --- Properties API: properties ----------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PROPERTIES_PREFIXES)
@pytest.mark.parametrize("object_type", [kind for kind, _ in WRITE_OBJECTS])
def test_property_create_read_list_and_refuse_a_duplicate(fake, token, prefix, object_type):
    base = f"{prefix}/{object_type}"
    assert get(fake, f"{base}/quickbooks_invoice_id", token).status_code == 404
    post(fake, f"{base}/groups", QUICKBOOKS_GROUP, token)

    created = post(fake, base, text_property(), token)
    assert created.status_code == 201
    body = created.json()
    assert created.headers["Location"] == f"{fake.url}{base}/quickbooks_invoice_id"
    assert {k: body[k] for k in ("name", "label", "type", "fieldType", "groupName", "options", "archived")} == {
        "name": "quickbooks_invoice_id",
        "label": "QuickBooks invoice ID",
        "type": "string",
        "fieldType": "text",
        "groupName": "quickbooks",
        "options": [],
        "archived": False,
    }
    assert body["description"] == "The id of the QuickBooks invoice created." and "hubspotDefined" not in body
    assert body["modificationMetadata"] == {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False}
    assert get(fake, f"{base}/quickbooks_invoice_id", token).json() == body
    listed = {p["name"]: p for p in get(fake, base, token).json()["results"]}
    assert listed["quickbooks_invoice_id"] == body
    assert listed["hs_object_id"]["hubspotDefined"] is True  # HubSpot's own properties are listed too
    assert fake.portal(PORTAL).properties_defined(object_type) == {"quickbooks_invoice_id": body}

    again = post(fake, base, text_property(label="Another"), token)
    assert again.status_code == 409
    assert again.json() | {"correlationId": None} == {
        "status": "error",
        "message": "A property named 'quickbooks_invoice_id' already exists.",
        "correlationId": None,
        "category": "OBJECT_ALREADY_EXISTS",
        "subCategory": "Properties.PROPERTY_WITH_NAME_EXISTS",
        "context": {"name": ["quickbooks_invoice_id"]},
    }


def test_hubspots_own_and_test_made_properties_exist_and_cannot_be_created(fake, token):
    fake.portal(PORTAL).define_property("deals", "made_in_the_ui")
    own = get(fake, "/crm/v3/properties/deals/amount", token).json()
    assert own["hubspotDefined"] is True and own["groupName"] == "dealinformation" and own["type"] == "number"
    ui = get(fake, "/crm/v3/properties/deals/made_in_the_ui", token).json()
    assert "hubspotDefined" not in ui
    for name in ("dealname", "made_in_the_ui"):
        body = text_property(name, groupName="dealinformation")
        assert post(fake, "/crm/v3/properties/deals", body, token).status_code == 409
    assert fake.portal(PORTAL).properties_defined("deals") == {}


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"name": "QuickBooks_ID"}, "upper case"),
        ({"name": "quickbooks id"}, "a space"),
        ({"name": "1st_id"}, "starts with a digit"),
        ({"type": "text"}, "not a type"),
        ({"type": "object_coordinates"}, "cannot be created"),
        ({"type": "number", "fieldType": "text"}, "fieldType does not fit the type"),
        ({"type": "bool", "fieldType": "select"}, "fieldType does not fit the type"),
        ({"fieldType": "dropdown"}, "not a fieldType"),
        ({"groupName": "no_such_group"}, "the group must exist"),
        ({"type": "enumeration", "fieldType": "select"}, "an enumeration needs options"),
        ({"type": "enumeration", "fieldType": "select", "options": [{"label": "Open"}]}, "an option needs a value"),
        ({"label": None}, "label is required"),
        ({"color": "green"}, "not a PropertyCreate field"),
    ],
)
def test_invalid_property_is_400_and_creates_nothing(fake, token, overrides, reason):
    post(fake, "/crm/properties/2026-03/deals/groups", QUICKBOOKS_GROUP, token)
    body = {k: v for k, v in (text_property() | overrides).items() if v is not None}
    response = post(fake, "/crm/properties/2026-03/deals", body, token)
    assert response.status_code == 400, reason
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert fake.portal(PORTAL).properties_defined("deals") == {}


def test_created_property_is_read_on_records_as_null_until_set(fake, token):
    deal = fake.portal(PORTAL).add("deals", {"dealname": "D"})
    read = f"/crm/v3/objects/deals/{deal}"
    assert (
        "quickbooks_invoice_id" not in get(fake, read, token, properties="quickbooks_invoice_id").json()["properties"]
    )
    post(fake, "/crm/v3/properties/deals/groups", QUICKBOOKS_GROUP, token)
    post(fake, "/crm/v3/properties/deals", text_property(), token)
    assert (
        get(fake, read, token, properties="quickbooks_invoice_id").json()["properties"]["quickbooks_invoice_id"] is None
    )


@pytest.mark.parametrize("prefix", PROPERTIES_PREFIXES)
def test_batch_create_is_201_and_207_for_names_taken(fake, token, prefix):
    post(fake, f"{prefix}/quotes/groups", QUICKBOOKS_GROUP, token)
    first = post(fake, f"{prefix}/quotes/batch/create", {"inputs": [text_property(), status_property()]}, token)
    assert first.status_code == 201
    assert first.json()["status"] == "COMPLETE" and "errors" not in first.json()
    assert {p["name"] for p in first.json()["results"]} == {"quickbooks_invoice_id", "quickbooks_invoice_status"}
    statuses = first.json()["results"][1]["options"]
    assert [(o["value"], o["hidden"]) for o in statuses] == [("open", False), ("paid", False)]

    inputs = [text_property(), balance_property(), status_property()]
    second = post(fake, f"{prefix}/quotes/batch/create", {"inputs": inputs}, token)
    assert second.status_code == 207
    body = second.json()
    assert [p["name"] for p in body["results"]] == ["quickbooks_invoice_balance"]
    assert body["numErrors"] == 2
    assert [e["context"]["name"] for e in body["errors"]] == [["quickbooks_invoice_id"], ["quickbooks_invoice_status"]]
    assert {(e["status"], e["category"], e["subCategory"]) for e in body["errors"]} == {
        ("error", "OBJECT_ALREADY_EXISTS", "Properties.PROPERTY_WITH_NAME_EXISTS")
    }
    assert set(fake.portal(PORTAL).properties_defined("quotes")) == {
        "quickbooks_invoice_id",
        "quickbooks_invoice_status",
        "quickbooks_invoice_balance",
    }


def test_batch_create_with_an_invalid_input_is_400_and_creates_nothing(fake, token):
    post(fake, "/crm/v3/properties/deals/groups", QUICKBOOKS_GROUP, token)
    inputs = [text_property(), balance_property() | {"groupName": "missing_group"}]
    response = post(fake, "/crm/v3/properties/deals/batch/create", {"inputs": inputs}, token)
    assert response.status_code == 400 and "inputs[1]" in response.json()["message"]
    assert fake.portal(PORTAL).properties_defined("deals") == {}
    assert post(fake, "/crm/v3/properties/deals/batch/create", {}, token).status_code == 400


def missing_scopes(response):
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["category"] == "MISSING_SCOPES"
    return body["errors"][0]["context"]["requiredGranularScopes"]


@pytest.mark.parametrize(
    "object_type, schema_scope",
    [
        ("deals", "crm.schemas.deals.write"),
        ("quotes", "crm.schemas.quotes.write"),
        ("commerce_payments", "crm.schemas.commercepayments.write"),
    ],
)
def test_creating_groups_and_properties_needs_the_schemas_write_scope(fake, object_type, schema_scope):
    read_scope = "crm.objects.commercepayments.write" if object_type == "commerce_payments" else None
    read_scope = read_scope or f"crm.objects.{object_type}.read"
    limited = fake.issue_tokens(PORTAL, scopes=["oauth", read_scope])["access_token"]
    base = f"/crm/properties/2026-03/{object_type}"
    assert get(fake, f"{base}/groups", limited).status_code == 200  # reading needs no schemas scope
    assert get(fake, base, limited).status_code == 200
    assert missing_scopes(post(fake, f"{base}/groups", QUICKBOOKS_GROUP, limited)) == [schema_scope]
    assert missing_scopes(post(fake, base, text_property(), limited)) == [schema_scope]
    assert missing_scopes(post(fake, f"{base}/batch/create", {"inputs": [text_property()]}, limited)) == [schema_scope]
    granted = fake.issue_tokens(PORTAL, scopes=["oauth", read_scope, schema_scope])["access_token"]
    assert post(fake, f"{base}/groups", QUICKBOOKS_GROUP, granted).status_code == 201


def test_reading_properties_needs_a_read_scope_of_that_object(fake):
    contacts_only = fake.issue_tokens(PORTAL, scopes=["oauth", "crm.objects.contacts.read"])["access_token"]
    assert "crm.objects.deals.read" in missing_scopes(get(fake, "/crm/v3/properties/deals", contacts_only))
    schemas = fake.issue_tokens(PORTAL, scopes=["oauth", "crm.schemas.deals.read"])["access_token"]
    assert get(fake, "/crm/v3/properties/deals/groups", schemas).status_code == 200
    # The spec's list leaves out crm.objects.commercepayments.read; crm.schemas.commercepayments.read reads them.
    payments_read = fake.issue_tokens(PORTAL, scopes=["oauth", "crm.objects.commercepayments.read"])["access_token"]
    missing_scopes(get(fake, "/crm/v3/properties/commerce_payments", payments_read))
    payments_schema = fake.issue_tokens(PORTAL, scopes=["oauth", "crm.schemas.commercepayments.read"])["access_token"]
    assert get(fake, "/crm/v3/properties/commerce_payments", payments_schema).status_code == 200


def test_properties_api_wants_a_token_and_a_known_object_type(fake, token):
    assert get(fake, "/crm/v3/properties/deals").status_code == 401
    assert get(fake, "/crm/properties/2026-03/widgets/groups", token).status_code == 400
    assert get(fake, "/crm/properties/2026-03/0-3/groups", token).status_code == 200  # type ids work


# --- record updates ----------------------------------------------------------------------------------------


def with_quickbooks_properties(fake, token, object_type="deals"):
    post(fake, f"/crm/v3/properties/{object_type}/groups", QUICKBOOKS_GROUP, token)
    inputs = [text_property(), status_property(), balance_property()]
    assert post(fake, f"/crm/v3/properties/{object_type}/batch/create", {"inputs": inputs}, token).status_code == 201


@pytest.mark.parametrize("path", ["/crm/objects/2026-03/{type}/{id}", "/crm/v3/objects/{type}/{id}"])
@pytest.mark.parametrize("object_type", [kind for kind, _ in WRITE_OBJECTS])
def test_patch_updates_the_record_and_answers_the_object(fake, token, path, object_type):
    with_quickbooks_properties(fake, token, object_type)
    record = fake.portal(PORTAL).add(object_type, {})
    before = fake.portal(PORTAL).get(object_type, record)
    values = {"quickbooks_invoice_id": "130", "quickbooks_invoice_status": "open", "quickbooks_invoice_balance": 99.5}
    response = patch(fake, path.format(type=object_type, id=record), {"properties": values}, token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"id", "properties", "createdAt", "updatedAt", "archived"} and body["id"] == record
    assert body["properties"]["quickbooks_invoice_id"] == "130"
    assert body["properties"]["quickbooks_invoice_balance"] == "99.5"  # stored as text
    assert body["properties"]["hs_object_id"] == record
    stored = fake.portal(PORTAL).get(object_type, record)
    assert stored["properties"]["quickbooks_invoice_status"] == "open"
    assert stored["updatedAt"] >= before["updatedAt"] and body["updatedAt"] == stored["updatedAt"]
    read = get(fake, path.format(type=object_type, id=record), token, properties="quickbooks_invoice_id")
    assert read.json()["properties"]["quickbooks_invoice_id"] == "130"


def test_patch_with_an_unknown_property_is_400_naming_it_and_changes_nothing(fake, token):
    deal = fake.portal(PORTAL).add("deals", {"dealname": "D"})
    values = {"dealname": "Renamed", "quickbooks_invoice_id": "130"}
    response = patch(fake, f"/crm/objects/2026-03/deals/{deal}", {"properties": values}, token)
    assert response.status_code == 400
    body = response.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: [")
    (listed,) = json.loads(body["message"].removeprefix("Property values were not valid: "))
    assert listed == {
        "isValid": False,
        "message": 'Property "quickbooks_invoice_id" does not exist',
        "error": "PROPERTY_DOESNT_EXIST",
        "name": "quickbooks_invoice_id",
        "localizedErrorMessage": 'Property "quickbooks_invoice_id" does not exist',
        "portalId": PORTAL,
    }
    assert body["errors"] == [
        {
            "message": 'Property "quickbooks_invoice_id" does not exist',
            "code": "PROPERTY_DOESNT_EXIST",
            "context": {"propertyName": ["quickbooks_invoice_id"]},
        }
    ]
    assert fake.portal(PORTAL).get("deals", deal)["properties"]["dealname"] == "D"


@pytest.mark.parametrize(
    "values, code",
    [
        ({"quickbooks_invoice_status": "settled"}, "INVALID_OPTION"),
        ({"quickbooks_invoice_balance": "12,50"}, "INVALID_FLOAT"),
        ({"quickbooks_invoice_balance": " 12.50"}, "INVALID_FLOAT"),  # no surrounding spaces since April 2025
        ({"hs_object_id": "5"}, "READ_ONLY_VALUE"),
        ({"hs_lastmodifieddate": "2026-01-01T00:00:00Z"}, "READ_ONLY_VALUE"),
    ],
)
def test_patch_refuses_values_the_property_does_not_take(fake, token, values, code):
    with_quickbooks_properties(fake, token)
    deal = fake.portal(PORTAL).add("deals", {"dealname": "D"})
    response = patch(fake, f"/crm/v3/objects/deals/{deal}", {"properties": values}, token)
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == code


def test_patch_clears_with_an_empty_string_and_finds_by_id_property(fake, token):
    with_quickbooks_properties(fake, token)
    portal = fake.portal(PORTAL)
    deal = portal.add("deals", {"dealname": "D", "quickbooks_invoice_status": "open"})
    cleared = patch(fake, f"/crm/v3/objects/deals/{deal}", {"properties": {"quickbooks_invoice_status": ""}}, token)
    assert cleared.status_code == 200 and portal.get("deals", deal)["properties"]["quickbooks_invoice_status"] == ""
    by_id = patch(
        fake, "/crm/v3/objects/deals/130", {"properties": {"dealname": "E"}}, token, idProperty="quickbooks_invoice_id"
    )
    assert by_id.status_code == 404  # no deal holds that value
    portal.update("deals", deal, {"quickbooks_invoice_id": "130"})
    by_id = patch(
        fake, "/crm/v3/objects/deals/130", {"properties": {"dealname": "E"}}, token, idProperty="quickbooks_invoice_id"
    )
    assert by_id.status_code == 200 and by_id.json()["id"] == deal


@pytest.mark.parametrize(
    "body",
    [{}, {"properties": {}}, {"properties": "x"}, {"properties": {"dealname": {"value": "x"}}}, {"dealname": "x"}],
)
def test_patch_with_a_malformed_body_is_400(fake, token, body):
    deal = fake.portal(PORTAL).add("deals", {"dealname": "D"})
    response = patch(fake, f"/crm/v3/objects/deals/{deal}", body, token)
    assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"


def test_patch_of_an_unknown_record_is_404(fake, token):
    response = patch(fake, "/crm/objects/2026-03/deals/404404", {"properties": {"dealname": "X"}}, token)
    assert response.status_code == 404 and response.json()["category"] == "OBJECT_NOT_FOUND"
    assert response.json()["context"] == {"id": ["404404"]}


@pytest.mark.parametrize(
    "object_type, write_scope",
    [
        ("deals", "crm.objects.deals.write"),
        ("quotes", "crm.objects.quotes.write"),
        ("commerce_payments", "crm.objects.commercepayments.write"),
    ],
)
def test_updates_need_the_objects_write_scope(fake, object_type, write_scope):
    record = fake.portal(PORTAL).add(object_type, {})
    fake.portal(PORTAL).define_property(object_type, "note")
    read_only = ["oauth", f"crm.objects.{object_type.replace('_', '')}.read"]  # commercepayments
    limited = fake.issue_tokens(PORTAL, scopes=read_only)["access_token"]
    body = {"properties": {"note": "x"}}
    required = missing_scopes(patch(fake, f"/crm/v3/objects/{object_type}/{record}", body, limited))
    assert write_scope in required
    batch = {"inputs": [{"id": record, "properties": {"note": "x"}}]}
    assert write_scope in missing_scopes(post(fake, f"/crm/objects/2026-03/{object_type}/batch/update", batch, limited))
    granted = fake.issue_tokens(PORTAL, scopes=["oauth", write_scope])["access_token"]
    assert patch(fake, f"/crm/v3/objects/{object_type}/{record}", body, granted).status_code == 200


def test_quote_updates_also_take_the_legacy_e_commerce_scope(fake):
    quote = fake.portal(PORTAL).add("quotes", {"hs_title": "Q"})
    legacy = fake.issue_tokens(PORTAL, scopes=["oauth", "e-commerce"])["access_token"]
    assert patch(fake, f"/crm/v3/objects/quotes/{quote}", {"properties": {"hs_title": "R"}}, legacy).status_code == 200


@pytest.mark.parametrize("prefix", ["/crm/objects/2026-03", "/crm/v3/objects"])
def test_batch_update_is_200_and_207_for_unknown_ids(fake, token, prefix):
    with_quickbooks_properties(fake, token)
    portal = fake.portal(PORTAL)
    one, two = portal.add("deals", {"dealname": "A"}), portal.add("deals", {"dealname": "B"})
    inputs = [{"id": one, "properties": {"quickbooks_invoice_id": "1"}}, {"id": two, "properties": {"dealname": "C"}}]
    done = post(fake, f"{prefix}/deals/batch/update", {"inputs": inputs}, token)
    assert done.status_code == 200
    assert done.json()["status"] == "COMPLETE" and "errors" not in done.json()
    assert {r["id"]: r["properties"].get("quickbooks_invoice_id") for r in done.json()["results"]} == {
        one: "1",
        two: None,
    }
    assert portal.get("deals", two)["properties"]["dealname"] == "C"

    inputs = [
        {"id": one, "properties": {"quickbooks_invoice_id": "2"}},
        {"id": "404404", "properties": {"dealname": "X"}},
    ]
    partial = post(fake, f"{prefix}/deals/batch/update", {"inputs": inputs}, token)
    assert partial.status_code == 207
    body = partial.json()
    assert [r["id"] for r in body["results"]] == [one] and body["numErrors"] == 1
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND" and body["errors"][0]["context"] == {"ids": ["404404"]}
    assert portal.get("deals", one)["properties"]["quickbooks_invoice_id"] == "2"


def test_batch_update_with_an_unknown_property_is_400_and_updates_nothing(fake, token):
    portal = fake.portal(PORTAL)
    one, two = portal.add("deals", {"dealname": "A"}), portal.add("deals", {"dealname": "B"})
    inputs = [{"id": one, "properties": {"dealname": "A2"}}, {"id": two, "properties": {"quickbooks_invoice_id": "9"}}]
    response = post(fake, "/crm/v3/objects/deals/batch/update", {"inputs": inputs}, token)
    assert response.status_code == 400
    assert response.json()["errors"][0]["context"] == {"propertyName": ["quickbooks_invoice_id"]}
    assert portal.get("deals", one)["properties"]["dealname"] == "A"


def test_batch_update_refuses_repeated_ids_and_more_than_100_inputs(fake, token):
    deal = fake.portal(PORTAL).add("deals", {"dealname": "A"})
    twice = [{"id": deal, "properties": {"dealname": "B"}}, {"id": deal, "properties": {"dealname": "C"}}]
    response = post(fake, "/crm/v3/objects/deals/batch/update", {"inputs": twice}, token)
    assert response.status_code == 400
    assert response.json()["message"] == f"Duplicate IDs found in batch input: [{deal}]. IDs must be unique"
    many = [{"id": str(n), "properties": {"dealname": "X"}} for n in range(101)]
    assert post(fake, "/crm/v3/objects/deals/batch/update", {"inputs": many}, token).status_code == 400
    assert post(fake, "/crm/v3/objects/deals/batch/update", {"inputs": [{"id": deal}]}, token).status_code == 400
    assert fake.portal(PORTAL).get("deals", deal)["properties"]["dealname"] == "A"


def test_updates_are_recorded_and_count_against_the_rate_limit(fake, token):
    deal = fake.portal(PORTAL).add("deals", {"dealname": "A"})
    first = patch(fake, f"/crm/v3/objects/deals/{deal}", {"properties": {"dealname": "B"}}, token)
    second = patch(fake, f"/crm/v3/objects/deals/{deal}", {"properties": {"dealname": "C"}}, token)
    remaining = [int(r.headers["X-HubSpot-RateLimit-Remaining"]) for r in (first, second)]
    assert remaining[1] == remaining[0] - 1
    (recorded, _) = fake.requests_to("PATCH", f"/crm/v3/objects/deals/{deal}")
    assert recorded.json == {"properties": {"dealname": "B"}} and recorded.status == 200

    fake.enforce_rate_limit = True
    for _ in range(200):
        response = patch(fake, f"/crm/v3/objects/deals/{deal}", {"properties": {"dealname": "D"}}, token)
        if response.status_code == 429:
            break
    assert response.status_code == 429 and response.json()["errorType"] == "RATE_LIMIT"


# --- scopes a test can grant ---------------------------------------------------------------------------------


def test_default_install_grants_the_write_back_scopes_and_tests_can_grant_fewer(fake):
    from tests.fakes.hubspot import DEFAULT_SCOPES

    for scope in (
        "crm.objects.deals.write",
        "crm.schemas.deals.write",
        "crm.objects.quotes.write",
        "crm.schemas.quotes.write",
        "crm.objects.commercepayments.write",
        "crm.schemas.commercepayments.write",
    ):
        assert scope in DEFAULT_SCOPES
    none = fake.issue_tokens(PORTAL, scopes=[])["access_token"]
    assert get(fake, f"/oauth/v1/access-tokens/{none}").json()["scopes"] == []


# --- Load: rate limit, latency, chaos ------------------------------------------------------------------------


def in_parallel(calls) -> list:
    """Run the calls at the same moment, each on its own thread; their results (or exceptions) in order."""
    results = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index, call):
        start.wait()
        try:
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return results


def test_rate_limit_is_a_sliding_window_per_portal_and_its_429s_are_counted(fake, token):
    other = fake.issue_tokens(OTHER_PORTAL)["access_token"]
    deal = fake.portal(PORTAL).add("deals", {"dealname": "A"})
    fake.enforce_rate_limit = True
    fake.rate_limit_max, fake.rate_limit_interval = 3, 0.4
    statuses = [get(fake, f"/crm/v3/objects/deals/{deal}", token).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert get(fake, "/crm/v3/objects/deals/1", other).status_code == 404  # another portal: its own window
    throttled = get(fake, f"/crm/v3/objects/deals/{deal}", token)
    assert throttled.status_code == 429 and throttled.json()["errorType"] == "RATE_LIMIT"
    assert throttled.headers["X-HubSpot-RateLimit-Max"] == "3"
    assert fake.rate_limited == {"ten_secondly": 2} and not fake.injected
    time.sleep(0.45)  # the first three leave the window
    assert get(fake, f"/crm/v3/objects/deals/{deal}", token).status_code == 200


def test_latency_is_slept_outside_the_lock():
    with FakeHubSpot(latency=0.3) as fake:
        token = fake.issue_tokens(PORTAL)["access_token"]
        deal = fake.portal(PORTAL).add("deals", {"dealname": "A"})
        started = time.monotonic()
        responses = in_parallel([lambda: get(fake, f"/crm/v3/objects/deals/{deal}", token) for _ in range(4)])
        elapsed = time.monotonic() - started
    assert [r.status_code for r in responses] == [200] * 4
    assert 0.3 <= elapsed < 1.0  # one at a time would take 1.2 s


def test_latency_jitter(fake, token):
    fake.latency, fake.latency_jitter = 0.2, 0.1
    started = time.monotonic()
    get(fake, "/crm/v3/objects/deals/1", token)
    assert 0.1 <= time.monotonic() - started < 0.6


def complete(fake, callback, token, timeout=5):
    return requests.post(
        fake.url + COMPLETE_2026.format(id=callback), json=SUCCESS, headers=bearer(token), timeout=timeout
    )


def test_chaos_5xx_completes_nothing(fake, token):
    fake.enforce_rate_limit = True
    fake.chaos(1.0, kinds=["5xx"], seed=3)
    callback = fake.new_callback_id(PORTAL)
    response = complete(fake, callback, token)
    assert response.status_code in (500, 502, 503)
    assert fake.completions_by_callback() == {} and fake.injected == {"5xx": 1} and not fake.rate_limited
    assert [a.status for a in fake.completion_attempts] == [response.status_code]
    fake.calm()
    assert complete(fake, callback, token).status_code == 204  # still pending


def test_chaos_429_is_hubspots_rate_limit_body_but_not_counted_as_ours(fake, token):
    fake.chaos(1.0, kinds=("429",))
    response = complete(fake, fake.new_callback_id(PORTAL), token)
    assert response.status_code == 429 and response.json()["errorType"] == "RATE_LIMIT"
    assert fake.injected == {"429": 1} and not fake.rate_limited and not fake.completions


def test_chaos_timeout_answers_only_after_the_client_gave_up(fake, token):
    fake.chaos(1.0, kinds=["timeout"], timeout_seconds=0.3)
    callback = fake.new_callback_id(PORTAL)
    with pytest.raises(requests.ReadTimeout):
        complete(fake, callback, token, timeout=0.1)
    started = time.monotonic()
    assert complete(fake, callback, token).status_code == 504 and time.monotonic() - started >= 0.3
    assert not fake.completions and fake.injected == {"timeout": 2}


def test_chaos_lost_completion_is_done_and_the_retry_is_refused_as_not_pending(fake, token):
    fake.chaos(1.0, kinds=["lost"])
    callback = fake.new_callback_id(PORTAL)
    lost = complete(fake, callback, token)
    assert lost.status_code == 502
    assert fake.completions_by_callback() == {callback: 1}
    fake.calm()
    retry = complete(fake, callback, token)
    assert retry.status_code == 400 and "not in a pending state" in retry.json()["message"]
    assert fake.completions_by_callback() == {callback: 1} and fake.injected == {"lost": 1}
    assert [r.status for r in fake.requests_to("POST", "/callbacks/")] == [502, 400]


def test_chaos_paths_narrow_it_and_oauth_is_left_alone(fake, token):
    fake.chaos(1.0, kinds=["5xx"], paths=["/callbacks/"])
    assert get(fake, "/crm/v3/objects/deals/1", token).status_code == 404  # not a callback: answered
    assert complete(fake, fake.new_callback_id(PORTAL), token).status_code >= 500
    fake.chaos(1.0, kinds=["5xx"])
    refresh = fake.issue_tokens(PORTAL)["refresh_token"]
    assert token_request(fake, grant_type="refresh_token", refresh_token=refresh).status_code == 200
    assert fake.injected == {"5xx": 1}


def test_chaos_draws_are_counted_under_concurrency_and_reset(fake, token):
    fake.chaos(0.5, kinds=["5xx", "429"], seed=11)
    responses = in_parallel([lambda: get(fake, "/crm/v3/objects/deals/1", token) for _ in range(24)])
    failed = [r.status_code for r in responses if r.status_code != 404]
    assert 0 < len(failed) < 24 and sum(fake.injected.values()) == len(failed)
    assert fake.injected["429"] == failed.count(429)
    fake.reset_counters()
    assert not fake.injected and not fake.rate_limited
    with pytest.raises(ValueError):
        fake.chaos(0.5, kinds=["lost", "slow"])


def test_completions_by_callback_counts_accepted_completions(fake, token):
    first, second = fake.new_callback_id(PORTAL), fake.new_callback_id(PORTAL)
    batch = {"inputs": [{"callbackId": first, **SUCCESS}, {"callbackId": second, **SUCCESS}]}
    assert post(fake, "/automation/actions/callbacks/2026-03/complete", batch, token).status_code == 204
    assert complete(fake, first, token).status_code == 400
    assert fake.completions_by_callback() == {first: 1, second: 1}
