// Live updates: the `usageChanged` subscription (graphql-ws over WebSocket) tells the page what
// changed in its account, and the page re-reads only the parts that show it. Bursts are merged:
// one refresh at a time, whatever arrives meanwhile goes into the next one. When the socket is
// down the page polls every REFRESH_SECONDS instead, says so, and keeps trying to reconnect.
// A read made while no subscription listened may have missed a change committed before the
// listening began: the first time the page is listening after such a read, it reads everything.

import { type Client, createClient } from "graphql-ws";
import { sessionToken } from "./api";
import { h } from "./dom";
import { UsageChangedDocument, type UsageChangeKind, type UsageChangedSubscription } from "./generated/graphql";
import { REFRESH_SECONDS } from "./sections/freshness";

export type ChangeKind = UsageChangeKind;
export type LiveState = "connecting" | "live" | "polling";
/** The parts of the page a change can touch (each one a GraphQL document). */
export type Part = "llm" | "keys" | "toolbar" | "anomalies" | "compute" | "voice" | "invoice";

/** What each kind of change makes stale: the documents that read it. */
const PARTS: Record<ChangeKind, Part[]> = {
  LLM: ["llm", "keys", "invoice"],
  // Speech made with a key counts against its cap (the card's accrued figure).
  VOICE: ["voice", "keys", "invoice"],
  COMPUTE: ["compute", "invoice"],
  KEYS: ["keys", "toolbar"],
  ANOMALIES: ["anomalies"],
};

export function partsOf(kinds: Iterable<ChangeKind>): Set<Part> {
  const parts = new Set<Part>();
  for (const kind of kinds) for (const part of PARTS[kind] ?? []) parts.add(part);
  return parts;
}

export interface LiveOptions {
  /** The account the page shows (null: the caller's default, as the queries have it). */
  accountId(): string | null;
  /** Re-read the parts these kinds touch; resolves once drawn (or failed). */
  refresh(kinds: Set<ChangeKind>): Promise<void>;
  /** Re-read everything (polling, and catching up after the socket was down). */
  reloadAll(): Promise<void>;
  /** False while the page should stay still (hidden, a dialog open): news waits. */
  canRefresh(): boolean;
}

// Between two refreshes at least this long: at most a few refreshes a second under load.
const MIN_GAP_MS = 250;
const RETRY_MS = [1_000, 2_000, 5_000, 10_000, 30_000];
// A socket closed because its session token expired is reopened at once with a fresh one; the
// page says "polling" only if that does not work within this long.
const QUIET_RECONNECT_MS = 3_000;
const CLOSE_TOKEN_EXPIRED = 4401;
// The page's first read waits for the subscription to listen (so that it misses nothing), but
// no longer than this: a socket that neither opens nor fails must not hold the page blank.
const FIRST_READ_WAIT_MS = 1_000;

const LABELS: Record<LiveState, string> = {
  connecting: "Connecting live updates…",
  live: "Live",
  polling: `Live updates unavailable · refreshing every ${REFRESH_SECONDS} s`,
};

export class LiveUpdates {
  readonly el = h("span", { className: "live-status", role: "status", "data-live": "connecting" }, LABELS.connecting);
  state: LiveState = "connecting";
  private client: Client | null = null;
  private unsubscribe: (() => void) | null = null;
  private account: string | null = null;
  private pending = new Set<ChangeKind>();
  private refreshing = false;
  private lastRefresh = 0;
  private failures = 0;
  private wasLive = false;
  /** The current subscription has said it listens (reset on every new socket or account). */
  private listeningNow = false;
  /** Something was read while nobody listened: catch up once listening. */
  private readBlind = false;
  private readyWaiters: (() => void)[] = [];
  private stopped = true;
  private retryTimer: number | null = null;
  private statusTimer: number | null = null;
  private pollTimer: number | null = null;
  private timeTimer: number | null = null;
  private flushTimer: number | null = null;

  constructor(private readonly options: LiveOptions) {
    document.addEventListener("visibilitychange", () => this.flush());
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.account = this.options.accountId();
    // Nothing that is pushed grows with time, but an open compute interval does: re-read
    // compute (and the invoice) on the old rhythm even while live.
    this.timeTimer = window.setInterval(() => {
      if (this.state === "live") this.enqueue(["COMPUTE"]);
    }, REFRESH_SECONDS * 1000);
    this.pollTimer = window.setInterval(() => {
      if (this.state !== "live" && this.options.canRefresh()) void this.options.reloadAll();
    }, REFRESH_SECONDS * 1000);
    this.connect();
  }

  /** Resolves once the subscription listens, or it failed, or after FIRST_READ_WAIT_MS. */
  ready(): Promise<void> {
    if (this.listeningNow || this.state === "polling" || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = window.setTimeout(done, FIRST_READ_WAIT_MS);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.readyWaiters.push(done);
    });
  }

  /** The page is about to read: if nobody listens for its account now, it reads blind. */
  reading(): void {
    if (!this.listeningNow) this.readBlind = true;
  }

  /** Signed out, or the page is going away: close the socket, stop polling. */
  stop(): void {
    this.stopped = true;
    for (const timer of [this.retryTimer, this.statusTimer, this.flushTimer]) if (timer !== null) clearTimeout(timer);
    for (const timer of [this.pollTimer, this.timeTimer]) if (timer !== null) clearInterval(timer);
    this.retryTimer = this.statusTimer = this.flushTimer = this.pollTimer = this.timeTimer = null;
    this.disconnect();
    this.wakeReady();
    this.el.hidden = true;
  }

  /** The view moved to another account: listen to that one instead. */
  follow(accountId: string | null): void {
    if (this.stopped || accountId === this.account) return;
    this.account = accountId;
    this.pending.clear();
    this.disconnect();
    this.connect();
  }

  private connect(): void {
    const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/graphql`;
    // One client per attempt, no retries of its own: this class decides when to try again,
    // so that the page always knows whether it is live.
    const client = createClient({
      url,
      retryAttempts: 0,
      keepAlive: 20_000,
      // In a Clerk deployment the token goes in connection_init (fresh for every socket); in
      // development the upgrade request carries the `__session` cookie.
      connectionParams: async () => {
        const token = await sessionToken();
        return token ? { token } : {};
      },
      on: { closed: (event) => this.closed(client, event) },
    });
    this.client = client;
    const variables = this.account ? { accountId: this.account } : {};
    this.unsubscribe = client.subscribe<UsageChangedSubscription>(
      { query: UsageChangedDocument.toString(), variables },
      {
        next: (result) => {
          const change = result.data?.usageChanged;
          if (!change) return;
          if (change.kinds.length === 0) this.listening();
          else this.enqueue(change.kinds);
        },
        error: (error: unknown) => this.closed(client, error),
        complete: () => this.closed(client, null),
      },
    );
  }

  private disconnect(): void {
    const client = this.client;
    this.client = null;
    this.listeningNow = false;
    this.unsubscribe?.();
    this.unsubscribe = null;
    // dispose() awaits the socket's opening, which rejects with the CloseEvent of a socket
    // that never opened: nothing to report.
    if (client) Promise.resolve(client.dispose()).catch(() => {});
  }

  /** The server listens for us (its first message): from now on nothing is missed. */
  private listening(): void {
    this.failures = 0;
    if (this.statusTimer !== null) clearTimeout(this.statusTimer);
    this.statusTimer = null;
    const wasDown = this.state === "polling";
    this.show("live");
    this.listeningNow = true;
    // What changed while we were not listening is unknown: read everything once. That is after
    // an outage, and after any read made before this subscription listened (a first read that
    // did not wait, or one for an account followed since), which a change may have just missed.
    const catchUp = (this.wasLive && wasDown) || this.readBlind;
    this.readBlind = false;
    this.wasLive = true;
    this.wakeReady();
    if (catchUp) void this.options.reloadAll();
  }

  private wakeReady(): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const wake of waiters) wake();
  }

  private closed(client: Client, event: unknown): void {
    if (client !== this.client || this.stopped) return; // an old socket, or on purpose
    this.disconnect();
    const code = (event as { code?: number } | null)?.code;
    const expired = code === CLOSE_TOKEN_EXPIRED && this.failures === 0;
    if (expired) {
      // Normal life of a session: reconnect at once, say nothing unless it fails.
      this.statusTimer ??= window.setTimeout(() => this.show("polling"), QUIET_RECONNECT_MS);
    } else {
      this.show("polling");
      // Polling now: the page reads without waiting (and catches up once listening).
      this.wakeReady();
    }
    const wait = expired ? 0 : RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)] ?? 30_000;
    this.failures += 1;
    this.retryTimer = window.setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.connect();
    }, wait);
  }

  private show(state: LiveState): void {
    this.state = state;
    this.el.dataset.live = state;
    this.el.textContent = LABELS[state];
  }

  private enqueue(kinds: Iterable<ChangeKind>): void {
    for (const kind of kinds) this.pending.add(kind);
    this.flush();
  }

  /** One refresh at a time, at least MIN_GAP_MS apart; news arriving meanwhile is merged. */
  private flush(): void {
    if (this.refreshing || this.pending.size === 0 || this.flushTimer !== null) return;
    if (!this.options.canRefresh()) {
      // Hidden or a dialog open: look again shortly (visibilitychange also calls back).
      this.flushTimer = window.setTimeout(() => {
        this.flushTimer = null;
        this.flush();
      }, 1_000);
      return;
    }
    const wait = this.lastRefresh + MIN_GAP_MS - Date.now();
    if (wait > 0) {
      this.flushTimer = window.setTimeout(() => {
        this.flushTimer = null;
        this.flush();
      }, wait);
      return;
    }
    const kinds = this.pending;
    this.pending = new Set();
    this.refreshing = true;
    void this.options
      .refresh(kinds)
      .catch(() => {})
      .finally(() => {
        this.refreshing = false;
        this.lastRefresh = Date.now();
        this.flush();
      });
  }
}
