// The drill-down: one day's requests (for a model, or a key), their count and total, paginated.

import { execute } from "../api";
import { h, replace } from "../dom";
import { count, exactMoney, longDay, timestamp } from "../format";
import { RequestLogDocument, type RequestLogQuery } from "../generated/graphql";
import type { Scope } from "../scope";
import type { LogSelection } from "../state";
import { setState, skeleton } from "../ui";
import { runLoad } from "./lifecycle";

// The page size written in RequestLog.graphql.
export const PAGE_SIZE = 50;

export type LogPage = RequestLogQuery["requests"];

export class RequestLogDialog {
  readonly el: HTMLDialogElement;
  private readonly title = h("h2", { id: "log-title" }, "Requests");
  private readonly summary = h("dl", { className: "log-summary" });
  private readonly body = h("div", { className: "log-body table-scroll" });
  private readonly footer = h("div", { className: "log-footer" });
  private selection: LogSelection | null = null;
  private scope: Scope | null = null;
  /** `after` cursors of the pages seen so far: [null, end of page 1, end of page 2, ...] */
  private cursors: (string | null)[] = [null];
  private page = 0;
  private controller: AbortController | null = null;
  onClose: () => void = () => {};

  constructor(private readonly keyName: (keyId: string) => string | null) {
    const close = h("button", { type: "button", className: "icon-button", "aria-label": "Close the request log" }, "×");
    close.addEventListener("click", () => this.el.close());
    this.el = h(
      "dialog",
      { className: "dialog dialog-wide", id: "request-log", "aria-labelledby": "log-title" },
      h("div", { className: "dialog-head" }, this.title, close),
      this.summary,
      this.body,
      this.footer,
    );
    this.el.addEventListener("close", () => {
      this.controller?.abort();
      this.el.setAttribute("aria-busy", "false");
      this.selection = null;
      this.onClose();
    });
    // A click on the backdrop (outside the dialog's box) closes it too.
    this.el.addEventListener("click", (event) => {
      if (event.target === this.el) {
        const r = this.el.getBoundingClientRect();
        const inside = event.clientX >= r.left && event.clientX <= r.right && event.clientY >= r.top && event.clientY <= r.bottom;
        if (!inside) this.el.close();
      }
    });
  }

  get isOpen(): boolean {
    return this.el.open;
  }

  show(selection: LogSelection, scope: Scope): void {
    const same =
      this.selection &&
      this.selection.date === selection.date &&
      this.selection.model === selection.model &&
      this.selection.provider === selection.provider &&
      this.selection.keyId === selection.keyId &&
      (this.selection.agentId ?? null) === (selection.agentId ?? null);
    if (same && this.el.open) return;
    this.selection = selection;
    this.scope = scope;
    this.cursors = [null];
    this.page = 0;
    const what = selection.model ?? (selection.keyId ? `Key ${this.keyName(selection.keyId) ?? ""}`.trim() : "All requests");
    this.title.textContent = `${what} · ${longDay(selection.date)}`;
    if (!this.el.open) this.el.showModal();
    void this.load();
  }

  close(): void {
    if (this.el.open) this.el.close();
  }

  private keysInView(): string[] | null {
    const selection = this.selection;
    const scope = this.scope;
    if (!selection || !scope) return null;
    if (selection.keyId) return [selection.keyId];
    return scope.state.keyIds.length ? scope.state.keyIds : null;
  }

  private async load(): Promise<void> {
    const selection = this.selection;
    const scope = this.scope;
    if (!selection || !scope) return;
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    const provider = selection.provider ?? (scope.state.providers.length === 1 ? scope.state.providers[0] : null) ?? null;
    await runLoad({
      el: this.el,
      body: this.body,
      signal: controller.signal,
      placeholder: () => replace(this.body, skeleton(6)),
      fetch: (signal) =>
        execute(
          RequestLogDocument,
          {
            date: selection.date,
            accountId: scope.accountId,
            admin: scope.admin || null,
            keyIds: this.keysInView(),
            agentId: selection.agentId ?? null,
            provider,
            model: selection.model,
            after: this.cursors[this.page] ?? null,
          },
          signal,
        ),
      show: (answer) => {
        const agents = new Map(answer.usage.llm.agents.map((a) => [a.agentId, a.agentName]));
        this.render(answer.requests, agents, selection, provider);
      },
      retry: () => void this.load(),
    }).catch(() => {
      // Drawn in the dialog with its "Try again"; the page's freshness is not the log's.
    });
  }

  private render(page: LogPage, agents: Map<string | null, string | null>, selection: LogSelection, provider: string | null): void {
    setState(this.el, "ready");
    const keys = this.keysInView();
    replace(
      this.summary,
      h("div", null, h("dt", null, "Requests"), h("dd", { className: "log-count", "data-count": page.requestCount }, count(page.requestCount))),
      h("div", null, h("dt", null, "Total cost"), h("dd", { className: "log-total", "data-cents": page.totalCents }, exactMoney(page.totalCents))),
      h("div", null, h("dt", null, "Cached input"), h("dd", { className: "log-cached" }, `${count(page.cachedInputTokens)} tokens, saved ${exactMoney(page.cacheSavedCents)}`)),
      h("div", null, h("dt", null, "Model"), h("dd", null, selection.model ? `${selection.model}${provider ? ` (${provider})` : ""}` : "All models")),
      h("div", null, h("dt", null, "Keys"), h("dd", null, keys ? keys.map((k) => this.keyName(k) ?? k.slice(0, 8)).join(", ") : "All keys")),
      selection.agentId
        ? h("div", null, h("dt", null, "Agent"), h("dd", { className: "log-agent" }, agents.get(selection.agentId) ?? selection.agentId.slice(0, 8)))
        : null,
    );
    const rows = page.edges.map(({ node }) =>
      h(
        "tr",
        { className: node.status === "ok" ? "" : "is-error" },
        h("td", { className: "nowrap" }, timestamp(node.ts)),
        h("td", null, node.keyName ?? "—"),
        h("td", null, node.agentId ? (agents.get(node.agentId) ?? node.agentId.slice(0, 8)) : "—"),
        h("td", null, node.model),
        h("td", { className: "num" }, count(node.inputTokens)),
        h("td", { className: "num" }, count(node.outputTokens)),
        h("td", { className: "num" }, exactMoney(node.costCents)),
        h("td", null, h("span", { className: `status status-${node.status === "ok" ? "ok" : "error"}` }, node.status)),
        h("td", { className: "log-breakdown" }, breakdown(node)),
      ),
    );
    replace(
      this.body,
      page.edges.length === 0
        ? h("p", { className: "empty" }, "No requests on this day for this selection.")
        : h(
            "table",
            { className: "data-table log-table" },
            h("caption", { className: "visually-hidden" }, "Requests, oldest first"),
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                ...["Time (UTC)", "Key", "Agent", "Model", "Input tokens", "Output tokens", "Cost", "Status", "Tokens by kind, tier"].map((label, i) =>
                  h("th", { scope: "col", className: i >= 4 && i <= 6 ? "num" : "" }, label),
                ),
              ),
            ),
            h("tbody", null, rows),
          ),
    );
    const first = this.page * PAGE_SIZE + 1;
    const last = this.page * PAGE_SIZE + page.edges.length;
    if (page.pageInfo.hasNextPage && page.pageInfo.endCursor) this.cursors[this.page + 1] = page.pageInfo.endCursor;
    const previous = h("button", { type: "button", className: "button button-small button-quiet", disabled: this.page === 0 }, "Previous page");
    const next = h("button", { type: "button", className: "button button-small", disabled: !page.pageInfo.hasNextPage }, "Next page");
    previous.addEventListener("click", () => {
      this.page -= 1;
      void this.load();
    });
    next.addEventListener("click", () => {
      this.page += 1;
      void this.load();
    });
    replace(
      this.footer,
      h("p", { className: "log-range", "aria-live": "polite" }, page.edges.length ? `Showing ${count(first)}–${count(last)} of ${count(page.requestCount)}` : ""),
      h("div", { className: "pager" }, previous, next),
    );
  }
}

interface Breakdown {
  cachedInputTokens: number;
  cacheWrite5mTokens: number;
  cacheWrite1hTokens: number;
  reasoningTokens: number;
  audioInputTokens: number;
  audioOutputTokens: number;
  cacheSavedCents: number;
  serviceTier?: string | null;
  estimated: boolean;
}

/** A request's parts of its totals, its tier, and whether its counts are an estimate. */
function breakdown(node: Breakdown): string {
  const parts: string[] = [];
  if (node.cachedInputTokens) parts.push(`${count(node.cachedInputTokens)} cached (saved ${exactMoney(node.cacheSavedCents)})`);
  if (node.cacheWrite5mTokens) parts.push(`${count(node.cacheWrite5mTokens)} cache write 5 min`);
  if (node.cacheWrite1hTokens) parts.push(`${count(node.cacheWrite1hTokens)} cache write 1 h`);
  if (node.reasoningTokens) parts.push(`${count(node.reasoningTokens)} reasoning`);
  if (node.audioInputTokens) parts.push(`${count(node.audioInputTokens)} audio in`);
  if (node.audioOutputTokens) parts.push(`${count(node.audioOutputTokens)} audio out`);
  if (node.serviceTier) parts.push(`tier ${node.serviceTier}`);
  if (node.estimated) parts.push("estimated");
  return parts.length ? parts.join(" · ") : "—";
}
