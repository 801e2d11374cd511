// The "QuickBooks documents" app card: on a deal, quote or payment, the QuickBooks documents qbo-actions created
// for the record (with their status as QuickBooks last reported it) and, when the latest action on the record
// failed, what went wrong and how to fix it. The data comes from qbo-actions' GET /hubspot/cards/documents,
// through hubspot.fetch (HubSpot signs the request; the server answers only for the signed account).
import React, { useEffect, useState } from 'react';
import {
  Alert,
  Button,
  EmptyState,
  ErrorState,
  Flex,
  Link,
  LoadingSpinner,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableHeader,
  TableRow,
  Tag,
  Text,
  hubspot,
} from '@hubspot/ui-extensions';

// `flask hubspot export-project` writes the server's PUBLIC_URL here (the app's permittedUrls.fetch lists it).
export const PUBLIC_URL = '__QBO_ACTIONS_PUBLIC_URL__';
export const DOCUMENTS_PATH = '/hubspot/cards/documents';
export const TIMEOUT_MS = 10000; // hubspot.fetch gives up after 15 s by default

// decisions.md §6 status values → what the card says, and the Tag variant that says it.
const STATUSES = {
  open: ['Open', 'info'],
  paid: ['Paid', 'success'],
  partially_paid: ['Partially paid', 'warning'],
  overdue: ['Overdue', 'error'],
  voided: ['Voided', 'default'],
  deleted: ['Deleted in QuickBooks', 'error'],
  pending: ['Pending', 'info'],
  accepted: ['Accepted', 'success'],
  closed: ['Closed', 'default'],
  rejected: ['Rejected', 'error'],
};

hubspot.extend(({ context }) => <QuickBooksDocuments context={context} fetch={hubspot.fetch} />);

export function documentsUrl(context, baseUrl = PUBLIC_URL) {
  // HubSpot adds portalId (and userId, userEmail, appId) itself; the server trusts only that signed portalId.
  const query = new URLSearchParams({
    objectType: String(context.crm.objectTypeId),
    objectId: String(context.crm.objectId),
  });
  return `${baseUrl.replace(/\/+$/, '')}${DOCUMENTS_PATH}?${query}`;
}

export async function loadDocuments(fetch, url) {
  let response;
  try {
    response = await fetch(url, { method: 'GET', timeout: TIMEOUT_MS });
  } catch (error) {
    throw new Error(`qbo-actions could not be reached: ${error?.message || error}`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const reasons = body?.reason ? [body.reason] : body?.reasons || [];
    const why = reasons.length ? `: ${reasons.join(' ')}` : '.';
    throw new Error(`qbo-actions answered ${response.status}${why}`);
  }
  if (!body || !Array.isArray(body.documents)) {
    throw new Error('qbo-actions answered with something other than a list of documents.');
  }
  return body;
}

export function statusTag(status) {
  if (!status) {
    return ['Created', 'default']; // not read back from QuickBooks yet
  }
  return STATUSES[status] || [status.replace(/_/g, ' '), 'default'];
}

export function amountOf(document) {
  if (!document.amount) {
    return '—';
  }
  return document.currency ? `${document.amount} ${document.currency}` : document.amount;
}

export function QuickBooksDocuments({ context, fetch = hubspot.fetch, baseUrl = PUBLIC_URL }) {
  const [state, setState] = useState({ status: 'loading' });
  const [attempt, setAttempt] = useState(0);
  const url = documentsUrl(context, baseUrl);

  useEffect(() => {
    let current = true;
    setState({ status: 'loading' });
    loadDocuments(fetch, url).then(
      (data) => current && setState({ status: 'loaded', data }),
      (error) => current && setState({ status: 'failed', reason: error.message }),
    );
    return () => {
      current = false;
    };
  }, [fetch, url, attempt]);

  if (state.status === 'loading') {
    return <LoadingSpinner label="Loading the QuickBooks documents" layout="centered" />;
  }
  if (state.status === 'failed') {
    return (
      <ErrorState title="The QuickBooks documents could not be loaded.">
        <Text>{state.reason}</Text>
        <Button onClick={() => setAttempt((n) => n + 1)}>Try again</Button>
      </ErrorState>
    );
  }
  const { documents, lastFailure, consoleUrl } = state.data;
  return (
    <Flex direction="column" gap="md">
      {lastFailure ? <LastFailure failure={lastFailure} /> : null}
      {documents.length ? <DocumentsTable documents={documents} /> : <NoDocuments />}
      {consoleUrl ? (
        <Link href={{ url: consoleUrl, external: true }}>This record's history in the qbo-actions console</Link>
      ) : null}
    </Flex>
  );
}

export function DocumentsTable({ documents }) {
  return (
    <Table bordered={true}>
      <TableHead>
        <TableRow>
          <TableHeader>Document</TableHeader>
          <TableHeader>Amount</TableHeader>
          <TableHeader>Status</TableHeader>
          <TableHeader>Date</TableHeader>
          <TableHeader>QuickBooks</TableHeader>
        </TableRow>
      </TableHead>
      <TableBody>
        {documents.map((document, index) => {
          const [status, variant] = statusTag(document.status);
          return (
            <TableRow key={`${index}-${document.label}`}>
              <TableCell>{document.label}</TableCell>
              <TableCell>{amountOf(document)}</TableCell>
              <TableCell>
                <Tag variant={variant}>{status}</Tag>
              </TableCell>
              <TableCell>{document.date || '—'}</TableCell>
              <TableCell>
                {document.url && document.status !== 'deleted' ? (
                  <Link href={{ url: document.url, external: true }}>Open</Link>
                ) : (
                  <Text>—</Text>
                )}
              </TableCell>
            </TableRow>
          );
        })}
      </TableBody>
    </Table>
  );
}

export function NoDocuments() {
  return (
    <EmptyState title="No QuickBooks documents yet" layout="vertical" imageName="integrations">
      <Text>
        When a workflow runs a qbo-actions action on this record, the invoice, estimate or receipt it creates in
        QuickBooks is listed here.
      </Text>
    </EmptyState>
  );
}

export function LastFailure({ failure }) {
  return (
    <Alert title={`The last QuickBooks action on this record failed (${failure.error_code})`} variant="error">
      <Text>{failure.explanation}</Text>
      {failure.fix ? (
        <Text>
          <Text inline={true} format={{ fontWeight: 'bold' }}>
            How to fix it:
          </Text>{' '}
          {failure.fix}
        </Text>
      ) : null}
      {failure.consoleUrl ? (
        <Link href={{ url: failure.consoleUrl, external: true }}>Open the failure in the qbo-actions console</Link>
      ) : null}
    </Alert>
  );
}
