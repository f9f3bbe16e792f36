#!/usr/bin/env node
// Runs graphql-http's server audits (GraphQL over HTTP conformance) against a live endpoint.
// Exits 1 on any failure OR warning, 2 on bad usage.
//
//   node audit.mjs --url http://127.0.0.1:8000/graphql [--token <session token>] [--json]
//
// The token (or GRAPHQL_AUDIT_TOKEN) is sent as `Authorization: Bearer`, since /graphql
// requires a signed-in caller.
import { auditServer } from 'graphql-http';

function parseArgs(argv) {
  const options = { url: null, token: process.env.GRAPHQL_AUDIT_TOKEN || null, json: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--url') options.url = argv[++i];
    else if (arg === '--token') options.token = argv[++i];
    else if (arg === '--json') options.json = true;
    else {
      console.error(`unknown argument: ${arg}`);
      process.exit(2);
    }
  }
  if (!options.url) {
    console.error('usage: node audit.mjs --url URL [--token TOKEN] [--json]');
    process.exit(2);
  }
  return options;
}

const options = parseArgs(process.argv.slice(2));

function authenticatedFetch(input, init = {}) {
  const headers = new Headers(init.headers || {});
  if (options.token) headers.set('authorization', `Bearer ${options.token}`);
  return fetch(input, { ...init, headers });
}

const results = await auditServer({ url: options.url, fetchFn: authenticatedFetch });

const counts = { ok: 0, warn: 0, error: 0 };
const problems = [];
for (const result of results) {
  counts[result.status] += 1;
  if (result.status !== 'ok') {
    const detail = { id: result.id, name: result.name, status: result.status, reason: result.reason };
    if (result.response) {
      detail.responseStatus = result.response.status;
      try {
        detail.responseBody = await result.response.text();
      } catch {
        detail.responseBody = null;
      }
    }
    problems.push(detail);
  }
}

if (options.json) {
  console.log(JSON.stringify({ counts, problems }, null, 2));
} else {
  for (const p of problems) {
    console.log(`${p.status.toUpperCase()} ${p.id} ${p.name}: ${p.reason}`);
    if (p.responseStatus !== undefined) console.log(`  -> ${p.responseStatus} ${p.responseBody}`);
  }
  console.log(`${counts.ok} ok, ${counts.warn} warnings, ${counts.error} errors`);
}
process.exit(counts.warn || counts.error ? 1 : 0);
