// The card, rendered with HubSpot's own testing utilities (@hubspot/ui-extensions/testing) under `node --test`.
// hubspot.fetch is not among the SDK's mocks, so the card takes it as a prop and each test hands it a fake.
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import {
  Alert,
  Button,
  EmptyState,
  ErrorState,
  Link,
  LoadingSpinner,
  Table,
  TableBody,
  TableCell,
  TableRow,
  Tag,
} from '@hubspot/ui-extensions';
import { createRenderer } from '@hubspot/ui-extensions/testing';
import { DOCUMENTS_PATH, PUBLIC_URL, QuickBooksDocuments, TIMEOUT_MS } from '../quickbooks-documents.jsx';

const BASE_URL = 'https://qbo-actions.test';
const CONSOLE_URL = `${BASE_URL}/history?q=1234`;

const INVOICE = {
  kind: 'invoice',
  label: 'Invoice 1001',
  number: '1001',
  amount: '150.00',
  currency: 'USD',
  status: 'partially_paid',
  date: '2026-03-02',
  url: 'https://app.qbo.intuit.com/app/invoice?txnId=42',
};
const ESTIMATE = {
  kind: 'estimate',
  label: 'Estimate 2001',
  number: '2001',
  amount: '80.00',
  currency: 'USD',
  status: null,
  date: '2026-03-01',
  url: 'https://app.qbo.intuit.com/app/estimate?txnId=7',
};
const FAILURE = {
  error_code: 'PRODUCT_NOT_FOUND',
  explanation: 'These line items have no matching QuickBooks product: Widget.',
  fix: "Use QuickBooks products on the line items (matching SKU or name), or set 'Create the product in QuickBooks if it doesn't exist' to Yes, then re-enroll the record.",
  when: '2026-03-03T10:00:00+00:00',
  consoleUrl: `${BASE_URL}/executions/17`,
};

// A node's text with its descendants' (the SDK's `text` is only the node's own text children).
function textOf(node) {
  return (node.childNodes || []).map((child) => (child.nodeType === 'text' ? child.text : textOf(child))).join('');
}

function answer(body, status = 200) {
  return mock.fn(async () => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } }));
}

function renderCard(fetch, { objectTypeId = '0-3', objectId = 1234, baseUrl = BASE_URL } = {}) {
  const renderer = createRenderer('crm.record.tab');
  renderer.mocks.context.crm.objectTypeId = objectTypeId;
  renderer.mocks.context.crm.objectId = objectId;
  renderer.render(<QuickBooksDocuments context={renderer.mocks.context} fetch={fetch} baseUrl={baseUrl} />);
  return renderer;
}

test('asks qbo-actions for the record in the card context, with hubspot.fetch', async () => {
  const fetch = answer({ documents: [], lastFailure: null, consoleUrl: CONSOLE_URL });
  const { waitFor, find } = renderCard(fetch, { objectTypeId: '0-14', objectId: 987 });
  await waitFor(() => find(EmptyState));

  assert.equal(fetch.mock.callCount(), 1);
  const [url, options] = fetch.mock.calls[0].arguments;
  assert.equal(url, `${BASE_URL}/hubspot/cards/documents?objectType=0-14&objectId=987`);
  assert.deepEqual(options, { method: 'GET', timeout: TIMEOUT_MS });
  assert.ok(!new URL(url).searchParams.has('portalId'), 'the portal comes from HubSpot, never from the card');
});

test('uses the exported PUBLIC_URL when not told otherwise', async () => {
  const fetch = answer({ documents: [], lastFailure: null, consoleUrl: null });
  const renderer = createRenderer('crm.record.tab');
  renderer.mocks.context.crm.objectTypeId = '0-101';
  renderer.mocks.context.crm.objectId = 55;
  renderer.render(<QuickBooksDocuments context={renderer.mocks.context} fetch={fetch} />);
  await renderer.waitFor(() => renderer.find(EmptyState));

  assert.equal(fetch.mock.calls[0].arguments[0], `${PUBLIC_URL}${DOCUMENTS_PATH}?objectType=0-101&objectId=55`);
});

test('shows a spinner while loading', () => {
  const fetch = mock.fn(() => new Promise(() => {})); // never answers
  const { find, maybeFind } = renderCard(fetch);

  assert.ok(find(LoadingSpinner).props.label);
  assert.equal(maybeFind(Table), null);
});

test('lists the documents: label, amount, status tag, date and a link to QuickBooks', async () => {
  const fetch = answer({ documents: [INVOICE, ESTIMATE], lastFailure: null, consoleUrl: CONSOLE_URL });
  const { waitFor, find, findAll, maybeFind } = renderCard(fetch);
  await waitFor(() => find(Table));

  const rows = find(TableBody).findAll(TableRow);
  assert.equal(rows.length, 2);
  const cells = rows[0].findAll(TableCell).map(textOf);
  assert.deepEqual(cells, ['Invoice 1001', '150.00 USD', 'Partially paid', '2026-03-02', 'Open']);
  assert.equal(rows[0].find(Tag).props.variant, 'warning');
  assert.deepEqual(rows[0].find(Link).props.href, { url: INVOICE.url, external: true });

  assert.equal(rows[1].find(Tag).text, 'Created'); // not read back from QuickBooks yet
  assert.equal(rows[1].findAll(TableCell)[0].text, 'Estimate 2001');

  assert.equal(maybeFind(EmptyState), null);
  assert.equal(maybeFind(Alert), null, 'no failure, no alert');
  const consoleLink = findAll(Link).at(-1);
  assert.deepEqual(consoleLink.props.href, { url: CONSOLE_URL, external: true });
});

test('a document deleted in QuickBooks has no link', async () => {
  const deleted = { ...INVOICE, status: 'deleted' };
  const { waitFor, find } = renderCard(answer({ documents: [deleted], lastFailure: null, consoleUrl: null }));
  await waitFor(() => find(Table));

  const row = find(TableBody).find(TableRow);
  assert.equal(row.find(Tag).text, 'Deleted in QuickBooks');
  assert.equal(row.find(Tag).props.variant, 'error');
  assert.equal(row.maybeFind(Link), null);
});

test('says so when the record has no documents yet', async () => {
  const { waitFor, find, maybeFind } = renderCard(answer({ documents: [], lastFailure: null, consoleUrl: CONSOLE_URL }));
  await waitFor(() => find(EmptyState));

  assert.match(find(EmptyState).props.title, /No QuickBooks documents/);
  assert.equal(maybeFind(Table), null);
});

test('shows the last failure: code, explanation, fix and a link to it in the console', async () => {
  const { waitFor, find } = renderCard(answer({ documents: [INVOICE], lastFailure: FAILURE, consoleUrl: CONSOLE_URL }));
  await waitFor(() => find(Alert));

  const alert = find(Alert);
  assert.equal(alert.props.variant, 'error');
  assert.match(alert.props.title, /PRODUCT_NOT_FOUND/);
  assert.match(textOf(alert), /no matching QuickBooks product: Widget/);
  assert.match(textOf(alert), /How to fix it:/);
  assert.ok(textOf(alert).includes(FAILURE.fix));
  assert.deepEqual(alert.find(Link).props.href, { url: FAILURE.consoleUrl, external: true });
  assert.ok(find(Table), 'the documents are still listed');
});

test('shows why when qbo-actions refuses, and tries again on request', async () => {
  const fetch = answer({ error: 'invalid_signature', reason: 'X-HubSpot-Signature-v3 does not match the request' }, 401);
  const { waitFor, find } = renderCard(fetch);
  await waitFor(() => find(ErrorState));

  assert.match(textOf(find(ErrorState)), /qbo-actions answered 401: X-HubSpot-Signature-v3 does not match/);
  fetch.mock.mockImplementation(
    async () => new Response(JSON.stringify({ documents: [INVOICE], lastFailure: null, consoleUrl: null })),
  );
  find(Button).trigger('onClick');
  await waitFor(() => find(Table));
  assert.equal(fetch.mock.callCount(), 2);
});

test('shows an error when qbo-actions cannot be reached', async () => {
  const fetch = mock.fn(async () => {
    throw new Error('timeout');
  });
  const { waitFor, find } = renderCard(fetch);
  await waitFor(() => find(ErrorState));

  assert.match(textOf(find(ErrorState)), /could not be reached: timeout/);
});
