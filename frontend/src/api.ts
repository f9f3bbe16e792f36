// One small GraphQL client: POST the document string that graphql-codegen generated (typed with
// its result and variables), and turn every failure into an ApiError a section can show.

import type { DocumentTypeDecoration } from "@graphql-typed-document-node/core";
import { pageConfig } from "./config";

export type ErrorKind = "unauthenticated" | "forbidden" | "invalid" | "network" | "server";

export class ApiError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    /** The argument a BAD_USER_INPUT error names (e.g. accountId). */
    readonly argument: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

interface ClerkSession {
  getToken(): Promise<string | null>;
}
interface ClerkGlobal {
  loaded?: boolean;
  load(): Promise<void>;
  session?: ClerkSession | null;
  redirectToSignIn(options?: { redirectUrl?: string }): Promise<unknown>;
  signOut?(): Promise<unknown>;
}
declare global {
  interface Window {
    Clerk?: ClerkGlobal;
  }
}

let clerkReady: Promise<ClerkGlobal | null> | null = null;

/** In a Clerk deployment, Clerk's script (added by the server) keeps the session; wait for it. */
function clerk(): Promise<ClerkGlobal | null> {
  if (!pageConfig().clerkPublishableKey) return Promise.resolve(null);
  clerkReady ??= new Promise((resolve) => {
    const started = Date.now();
    const poll = (): void => {
      const found = window.Clerk;
      if (found) {
        (found.loaded ? Promise.resolve() : found.load()).then(
          () => resolve(found),
          () => resolve(null),
        );
      } else if (Date.now() - started > 10_000) {
        resolve(null);
      } else {
        setTimeout(poll, 50);
      }
    };
    poll();
  });
  return clerkReady;
}

/** A fresh Clerk session token, or null where the `__session` cookie is the session. */
export async function sessionToken(): Promise<string | null> {
  const found = await clerk();
  // Clerk session tokens live 60 s; getToken() returns a fresh one. Development relies on the
  // `__session` cookie that /dev/sign-in set.
  return found?.session ? await found.session.getToken() : null;
}

export async function authHeaders(): Promise<Record<string, string>> {
  const token = await sessionToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export async function signIn(): Promise<void> {
  const config = pageConfig();
  const here = location.pathname + location.search;
  const found = await clerk();
  if (found) {
    await found.redirectToSignIn({ redirectUrl: location.href });
    return;
  }
  const target = config.signInUrl ?? "/dev/sign-in";
  location.assign(`${target}?next=${encodeURIComponent(here)}`);
}

/** Ends the session: Clerk's, and the `__session` cookie (the server clears it), then back to
 * signing in (development: the chooser of demo users). */
export async function signOut(): Promise<void> {
  const found = await clerk();
  if (found?.signOut) await found.signOut();
  // JSON and same-origin, like every state-changing request the server accepts with a cookie.
  await fetch("/dashboard/sign-out", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  }).catch(() => undefined);
  const target = pageConfig().signInUrl;
  location.assign(target ? `${target}?next=${encodeURIComponent("/dashboard/usage")}` : "/dashboard/usage");
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string; argument?: string } }[];
}

/** Bytes of every GraphQL response body, by operation; read by benchmarks and tests. */
export const transferred = new Map<string, number>();

function operationName(document: string): string {
  return /(?:query|mutation)\s+(\w+)/.exec(document)?.[1] ?? "anonymous";
}

function kindOf(code: string | undefined, status: number): ErrorKind {
  const c = (code ?? "").toUpperCase();
  if (status === 401 || c === "UNAUTHENTICATED") return "unauthenticated";
  if (status === 403 || c === "FORBIDDEN") return "forbidden";
  if (status === 400 || c === "BAD_USER_INPUT" || c === "BAD_REQUEST" || c === "INVALID_PARAMETER")
    return "invalid";
  return "server";
}

export async function execute<TResult, TVariables>(
  document: DocumentTypeDecoration<TResult, TVariables> & { toString(): string },
  variables: TVariables,
  signal?: AbortSignal,
): Promise<TResult> {
  const query = document.toString();
  let response: Response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/graphql-response+json, application/json",
        ...(await authHeaders()),
      },
      body: JSON.stringify({ query, variables, operationName: operationName(query) }),
      signal: signal ?? null,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError("network", "The usage service cannot be reached. Check your connection.");
  }
  const text = await response.text();
  transferred.set(operationName(query), text.length);
  let body: GraphQLResponse<TResult> & { error?: { code?: string; message?: string } };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new ApiError(kindOf(undefined, response.status), `The server answered ${response.status}.`);
  }
  if (body.error) {
    throw new ApiError(kindOf(body.error.code, response.status), body.error.message ?? "Request refused.");
  }
  const first = body.errors?.[0];
  if (first) {
    throw new ApiError(kindOf(first.extensions?.code, response.status), first.message, first.extensions?.argument ?? null);
  }
  if (!response.ok || body.data === undefined || body.data === null) {
    throw new ApiError(kindOf(undefined, response.status), `The server answered ${response.status}.`);
  }
  return body.data;
}
