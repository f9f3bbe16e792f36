// The GraphQL playground at /graphql: GraphiQL with the explorer, built into this bundle and
// served from our own origin, so it works offline and under the dashboard's CSP. Its queries go
// to /graphql like the dashboard's: same origin, the session cookie (or Clerk's token), JSON.

import "graphiql/setup-workers/vite";
import "graphiql/style.css";
import "@graphiql/plugin-explorer/style.css";
import "./playground.css";
import { explorerPlugin } from "@graphiql/plugin-explorer";
import { GraphiQL } from "graphiql";
import { createElement } from "react";
import { createRoot } from "react-dom/client";
import { authHeaders, signIn } from "../api";
import { exampleTabs } from "./examples";

type Params = { query: string; operationName?: string | null; variables?: unknown };

async function fetcher(params: Params, options?: { headers?: Record<string, unknown> }): Promise<unknown> {
  const response = await fetch("/graphql", {
    method: "POST",
    credentials: "same-origin",
    headers: {
      // JSON, never a form type: the server accepts cookie-authenticated mutations only so.
      "Content-Type": "application/json",
      Accept: "application/graphql-response+json, application/json",
      ...(await authHeaders()),
      ...Object.fromEntries(Object.entries(options?.headers ?? {}).map(([k, v]) => [k, String(v)])),
    },
    body: JSON.stringify(params),
  });
  if (response.status === 401) showSignIn();
  return response.json();
}

function showSignIn(): void {
  const bar = document.getElementById("playground-signin");
  if (bar) bar.hidden = false;
}

function topBar(): HTMLElement {
  const bar = document.createElement("header");
  bar.className = "playground-bar";
  bar.innerHTML =
    '<a class="playground-brand" href="/dashboard/usage">CrabGlamp Usage</a>' +
    '<span class="playground-title">GraphQL playground</span>' +
    '<p id="playground-signin" class="playground-signin" role="alert" hidden>You are not signed in: queries are refused. <button type="button">Sign in</button></p>' +
    '<nav aria-label="Help"><a href="/docs/api-reference">API reference</a><a href="/dashboard/usage">Dashboard</a></nav>';
  bar.querySelector("button")?.addEventListener("click", () => void signIn());
  return bar;
}

const root = document.getElementById("playground");
if (root) {
  const host = document.createElement("div");
  host.className = "playground-ide";
  root.replaceChildren(topBar(), host);
  const tabs = exampleTabs(new Date().toISOString().slice(0, 7));
  // GraphiQL fills the first tab's editor with its query but not its variables; hand them over
  // unless the editor has variables of its own from an earlier visit.
  const fresh = localStorage.getItem("graphiql:variables") === null;
  createRoot(host).render(
    createElement(GraphiQL, {
      fetcher: fetcher as never,
      plugins: [explorerPlugin()],
      defaultTabs: tabs,
      ...(fresh ? { initialVariables: tabs[0]?.variables ?? "" } : {}),
      defaultEditorToolsVisibility: true,
      // Headers may hold a token: never kept in the browser's storage.
      shouldPersistHeaders: false,
    }),
  );
}
