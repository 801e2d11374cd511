"""The HubSpot fake speaks HubSpot's wire formats and refuses what HubSpot refuses (plain `requests`)."""

import threading
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
