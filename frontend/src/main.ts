// The usage dashboard: the view lives in the URL; each section loads exactly what it draws.

import "./styles.css";
import { ApiError, signIn, signOut } from "./api";
import { toCsv, download } from "./csv";
import { $, h, replace } from "./dom";
import { longDay, monthName as longMonth, parseDay } from "./format";
import { type ChangeKind, LiveUpdates, partsOf } from "./live";
import { anomalyMutations, keyMutations } from "./mutations";
import { type Scope, scopeOf } from "./scope";
import { AnomaliesSection } from "./sections/anomalies";
import { ComputeSection } from "./sections/compute";
import { Freshness, REFRESH_SECONDS } from "./sections/freshness";
import { InvoiceSection } from "./sections/invoice";
import { type KeySummary, RaiseCapDialog, RotateKeyDialog } from "./sections/keyActions";
import { KeysSection } from "./sections/keys";
import { LlmSection } from "./sections/llm";
import { ModelsSection } from "./sections/models";
import { RequestLogDialog } from "./sections/requestLog";
import { SummarySection, type Totals } from "./sections/summary";
import { Toolbar, type Viewer } from "./sections/toolbar";
import { VoiceSection } from "./sections/voice";
import { PRESETS, type LogSelection, type ViewState, fromSearch, parseSearch, sameView, toSearch } from "./state";
import { isAbort } from "./ui";

/** An account the URL names that the caller cannot see: one message instead of every panel's. */
function accountRefusal(error: unknown): { title: string; text: string } | null {
  if (!(error instanceof ApiError)) return null;
  if (error.kind === "forbidden")
    return { title: "You cannot see this account", text: "The address names an account you are not a member of. Ask one of its administrators to invite you, or go back to your own usage." };
  if (error.kind === "invalid" && error.argument === "accountId")
    return { title: "No such account", text: `The address's account is not an account id (${error.message}).` };
  return null;
}

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "x";
}

class Dashboard {
  private readonly parsed = parseSearch(location.search);
  private state: ViewState = this.parsed.state;
  private scope: Scope = scopeOf(this.state);
  /** Accounts the caller has been seen to read: the URL's account is checked once, first. */
  private readonly readable = new Set<string>();
  private readonly layout: HTMLElement[];
  private readonly notice = h("div", { className: "url-notice", role: "alert", hidden: true });
  private readonly accountLabel = h("p", { className: "account-label" });
  private readonly identity = h("div", { className: "identity" });
  private controller: AbortController | null = null;
  /** A live refresh of some parts (live.ts); a full reload aborts it. */
  private partial: AbortController | null = null;
  private fullLoad: Promise<void> | null = null;
  private loadingNow = false;
  private lastLoaded = 0;
  private totals: Totals = { llm: null, compute: null, voice: null };
  private readonly main: HTMLElement;
  private readonly periodLabel = h("p", { className: "period-label" });
  private readonly freshness = new Freshness(() => void this.reload(true));
  private readonly toolbar = new Toolbar({ change: (patch) => this.change(patch), exportCsv: () => this.exportCsv() });
  private readonly summary = new SummarySection();
  private readonly keys: KeysSection;
  private readonly llm: LlmSection;
  private readonly anomalies: AnomaliesSection;
  private readonly compute = new ComputeSection();
  private readonly voice = new VoiceSection();
  private readonly invoice = new InvoiceSection();
  private readonly models = new ModelsSection();
  private readonly log: RequestLogDialog;
  private readonly rotateDialog = new RotateKeyDialog(keyMutations);
  private readonly capDialog = new RaiseCapDialog(keyMutations);
  private readonly live = new LiveUpdates({
    accountId: () => this.state.accountId,
    refresh: (kinds) => this.refreshParts(kinds),
    reloadAll: () => this.reload(true),
    canRefresh: () => !document.hidden && !this.anyDialogOpen(),
  });

  constructor(root: HTMLElement) {
    const keyName = (id: string) => this.keys.data?.keys.find((k) => k.id === id)?.name ?? null;
    const changed = () => void this.reload(true);
    this.keys = new KeysSection({
      raiseCap: (k) => this.capDialog.open(k),
      rotate: (k) => this.rotateDialog.open(k),
      resume: (k) => anomalyMutations.resume(k.id).then(changed),
      setLeakPolicy: (k, policy) => anomalyMutations.setLeakPolicy(k.id, policy).then(changed),
    });
    this.llm = new LlmSection((selection) => this.openLog(selection));
    this.anomalies = new AnomaliesSection(
      {
        keyName,
        openLog: (a, byAgent) =>
          this.openLog({ date: a.date, model: null, provider: null, keyId: a.keyId, agentId: byAgent ? a.agentId : null }),
        rotate: (id) => this.withKey(id, (k) => this.rotateDialog.open(k)),
        raiseCap: (id) => this.withKey(id, (k) => this.capDialog.open(k)),
        lowerCap: (id, cents) => this.withKey(id, (k) => this.capDialog.open(k, cents)),
        changed,
      },
      anomalyMutations,
    );
    this.log = new RequestLogDialog(keyName);
    this.log.onClose = () => this.logClosed();
    this.rotateDialog.onDone = () => void this.reload(true);
    this.capDialog.onDone = () => void this.reload(true);
    this.keys.onData = () => this.anomalies.refreshNames();
    this.llm.onData = (d) => {
      this.models.render(d);
      this.setTotals({ llm: d ? { cents: d.totalCents, requests: d.requestCount } : null });
    };
    this.compute.onData = (d) => this.setTotals({ compute: d ? { cents: d.totalCents } : null });
    this.voice.onData = (d) => this.setTotals({ voice: d ? { cents: d.totalCents, characters: d.totalCharacters } : null });

    this.keys.accountOnly = { title: "Keys belong to accounts", text: "This is every account's usage. Choose an account above to see its virtual keys and act on them." };
    this.invoice.accountOnly = { title: "Invoices are per account", text: "Choose an account above to see its invoice for the month." };
    this.anomalies.accountOnly = { title: "Anomalies are found per account", text: "Choose an account above to see its anomalies." };
    this.layout = [
      this.notice,
      h("div", { className: "page-head" }, h("h1", null, "Usage"), this.accountLabel, this.periodLabel),
      this.toolbar.el,
      h("p", { className: "filter-note" }, "Provider and key filters narrow LLM spend only; compute and voice always show the whole account."),
      this.summary.el,
      this.anomalies.el,
      this.keys.el,
      this.llm.el,
      h("div", { className: "two-up" }, this.compute.el, this.voice.el),
      h("div", { className: "two-up two-up-wide" }, this.models.el, this.invoice.el),
    ];
    this.main = h("main", { id: "main", tabindex: "-1" }, ...this.layout);
    this.showProblems(this.parsed.problems);
    replace(
      root,
      h("a", { className: "skip-link", href: "#main" }, "Skip to the usage figures"),
      h(
        "header",
        { className: "topbar" },
        h("a", { className: "brand", href: "/dashboard/usage", "aria-label": "CrabGlamp Usage, home" }, h("span", { className: "logo", "aria-hidden": "true" }), h("span", null, "CrabGlamp"), h("span", { className: "brand-product" }, "Usage")),
        this.freshness.el,
        this.live.el,
        h("nav", { className: "topnav", "aria-label": "Help" }, h("a", { href: "/docs/monitor-usage" }, "Docs"), h("a", { href: "/docs/api-reference" }, "API"), h("a", { href: "/graphql" }, "GraphQL")),
        this.identity,
      ),
      this.main,
      this.log.el,
      this.rotateDialog.el,
      this.capDialog.el,
    );

    window.addEventListener("popstate", () => this.fromHistory());
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && Date.now() - this.lastLoaded > REFRESH_SECONDS * 1000) void this.reload(true);
    });
    // Changes are pushed (live.ts), which also polls while the socket is down.
    this.live.start();
    // The first read waits for the subscription to listen: read first, and a change committed
    // before the listening began would stay unseen until the next change.
    void this.live.ready().then(() => this.reload(false)).then(() => {
      if (this.state.log) this.log.show(this.state.log, this.scope);
    });
  }

  private anyDialogOpen(): boolean {
    return this.rotateDialog.el.open || this.capDialog.el.open;
  }

  private withKey(id: string, then: (key: KeySummary) => void): void {
    const key = this.keys.data?.keys.find((k) => k.id === id);
    if (key) then(key);
  }

  private setTotals(patch: Partial<Totals>): void {
    this.totals = { ...this.totals, ...patch };
    this.summary.render(this.totals, this.scope);
  }

  /** A new view from the toolbar: new URL entry, everything reloads. */
  private change(patch: Partial<ViewState>): void {
    const next: ViewState = { ...this.state, ...patch, log: null };
    if (sameView(next, this.state)) return;
    this.state = next;
    history.pushState({ view: true }, "", location.pathname + toSearch(next));
    this.live.follow(next.accountId);
    void this.reload(false);
  }

  private fromHistory(): void {
    const next = fromSearch(location.search);
    const viewChanged = !sameView(next, this.state);
    this.state = next;
    this.live.follow(next.accountId);
    if (viewChanged) void this.reload(false);
    if (next.log) this.log.show(next.log, scopeOf(next));
    else this.log.close();
  }

  private openLog(selection: LogSelection): void {
    this.state = { ...this.state, log: selection };
    history.pushState({ log: true }, "", location.pathname + toSearch(this.state));
    this.log.show(selection, this.scope);
  }

  private logClosed(): void {
    if (!fromSearch(location.search).log) return; // closed by the back button: URL already right
    if (history.state?.log) {
      history.back();
    } else {
      this.state = { ...this.state, log: null };
      history.replaceState(null, "", location.pathname + toSearch(this.state));
    }
  }

  private describePeriod(scope: Scope): string {
    const { period, state } = scope;
    const preset = PRESETS.find((p) => p.value === state.preset)?.label ?? (period.month ? longMonth(period.month) : "Custom range");
    const from = parseDay(period.from);
    const to = parseDay(period.to);
    const sameYear = from.getUTCFullYear() === to.getUTCFullYear();
    const start = longDay(period.from).slice(4, sameYear ? -5 : undefined);
    return `${preset} · ${start} – ${longDay(period.to).slice(4)} · ${period.days.length} days, UTC`;
  }

  reload(quiet: boolean): Promise<void> {
    this.live.reading();
    const load = this.load(quiet);
    this.fullLoad = load;
    return load;
  }

  /** Live news: re-read only the parts these kinds touch, keeping what is drawn meanwhile. */
  private async refreshParts(kinds: Set<ChangeKind>): Promise<void> {
    // A full load under way may have read before the change: let it finish, then refresh.
    if (this.loadingNow && this.fullLoad) await this.fullLoad;
    this.live.reading();
    this.partial?.abort();
    const controller = new AbortController();
    this.partial = controller;
    const { signal } = controller;
    const scope = this.scope;
    const parts = partsOf(kinds);
    this.freshness.loading();
    const started = new Date();
    const loads: Promise<void>[] = [];
    if (parts.has("llm")) loads.push(this.llm.load(scope, signal, true));
    if (parts.has("keys")) loads.push(this.keys.load(scope, signal, true));
    if (parts.has("toolbar")) loads.push(this.toolbar.load(scope, signal));
    if (parts.has("anomalies")) loads.push(this.anomalies.load(scope, signal, true));
    if (parts.has("compute")) loads.push(this.compute.load(scope, signal, true));
    if (parts.has("voice")) loads.push(this.voice.load(scope, signal, true));
    if (parts.has("invoice")) loads.push(this.invoice.load(scope, signal, true));
    const results = await Promise.allSettled(loads);
    if (signal.aborted) return;
    this.settle(results, started);
  }

  private async load(quiet: boolean): Promise<void> {
    this.controller?.abort();
    this.partial?.abort();
    const controller = new AbortController();
    this.controller = controller;
    const signal = controller.signal;
    this.scope = scopeOf(this.state);
    const scope = this.scope;
    this.periodLabel.textContent = this.describePeriod(scope);
    this.toolbar.show(scope);
    if (!quiet) {
      this.models.loading();
      this.totals = { llm: null, compute: null, voice: null };
      this.summary.render(this.totals, scope);
    }
    this.loadingNow = true;
    this.freshness.loading();
    const started = new Date();
    // An account named in the URL is checked before anything else asks for it: one clear
    // message if it is not the caller's to see, not one error per panel.
    const checkFirst = scope.accountId !== null && !this.readable.has(scope.accountId);
    if (checkFirst) {
      try {
        await this.toolbar.load(scope, signal);
      } catch (error) {
        if (signal.aborted || isAbort(error)) return;
        this.loadingNow = false;
        const refusal = accountRefusal(error);
        if (refusal) return this.refused(refusal);
        if (error instanceof ApiError && error.kind === "unauthenticated") return this.signedOut();
      }
      if (signal.aborted) return;
      if (scope.accountId && this.toolbar.viewer && !this.toolbar.viewer.account) {
        this.loadingNow = false;
        return this.refused({ title: "No such account", text: `No account has the id ${scope.accountId}.` });
      }
    }
    this.showSections();
    const results = await Promise.allSettled([
      this.llm.load(scope, signal, quiet),
      this.keys.load(scope, signal, quiet),
      checkFirst ? Promise.resolve() : this.toolbar.load(scope, signal),
      this.anomalies.load(scope, signal, quiet),
      this.compute.load(scope, signal, quiet),
      this.voice.load(scope, signal, quiet),
      this.invoice.load(scope, signal, quiet),
    ]);
    if (signal.aborted) return;
    this.loadingNow = false;
    this.settle(results, started);
  }

  private settle(results: PromiseSettledResult<void>[], started: Date): void {
    const failures = results.flatMap((r) => (r.status === "rejected" && !isAbort(r.reason) ? [r.reason as unknown] : []));
    if (failures.some((e) => e instanceof ApiError && e.kind === "unauthenticated")) {
      this.signedOut();
      return;
    }
    if (failures.length) {
      this.freshness.failedToRefresh();
    } else {
      this.lastLoaded = Date.now();
      this.freshness.loaded(started);
    }
    const viewer = this.toolbar.viewer;
    if (viewer) this.showViewer(viewer, this.scope);
    if (viewer?.account) this.readable.add(viewer.account.id);
    // A platform admin owns no account: the first view is every account's, with the picker.
    if (viewer?.isPlatformAdmin && !viewer.account && !this.scope.accountId && !this.scope.admin) {
      this.state = { ...this.state, admin: true };
      history.replaceState(history.state, "", location.pathname + toSearch(this.state));
      void this.reload(false);
    }
  }

  /** The header: which account this is, who is looking, what they may do, and signing out. */
  private showViewer(viewer: Viewer, scope: Scope): void {
    const role = viewer.isPlatformAdmin ? "platform admin" : viewer.role === "ADMIN" ? "admin" : viewer.role === "MEMBER" ? "member, read only" : "no account yet";
    this.accountLabel.textContent = scope.admin ? "All accounts (platform-wide)" : (viewer.account?.name ?? "No account yet");
    const out = h("button", { type: "button", className: "button button-small button-quiet", id: "sign-out" }, "Sign out");
    out.addEventListener("click", () => {
      this.live.stop();
      void signOut();
    });
    replace(
      this.identity,
      h("span", { className: "identity-text" }, "Signed in as ", h("strong", { className: "identity-user" }, viewer.userId), h("span", { className: "identity-role" }, ` (${role})`)),
      out,
    );
  }

  private showSections(): void {
    if (this.main.firstElementChild !== this.layout[0]) replace(this.main, ...this.layout);
    this.freshness.el.hidden = false;
  }

  private refused({ title, text }: { title: string; text: string }): void {
    const own = h("a", { className: "button", href: "/dashboard/usage" }, "Go to your usage");
    replace(
      this.main,
      h("div", { className: "signed-out account-refused", role: "alert" }, h("h1", null, title), h("p", null, text), own),
    );
    this.freshness.el.hidden = true;
  }

  /** What in the address could not be used, said once, with what the page shows instead. */
  private showProblems(problems: string[]): void {
    if (problems.length === 0) return;
    const dismiss = h("button", { type: "button", className: "link-button" }, "Dismiss");
    dismiss.addEventListener("click", () => {
      this.notice.hidden = true;
    });
    replace(
      this.notice,
      h("p", { className: "url-notice-title" }, "Part of this address could not be used:"),
      h("ul", null, problems.map((p) => h("li", null, p))),
      h("p", null, `Showing ${this.describePeriod(scopeOf(this.state))} instead. `, dismiss),
    );
    this.notice.hidden = false;
    // The address now says what the page shows.
    history.replaceState(null, "", location.pathname + toSearch(this.state));
  }

  private signedOut(): void {
    this.live.stop();
    const button = h("button", { type: "button", className: "button" }, "Sign in");
    button.addEventListener("click", () => void signIn());
    replace(
      this.main,
      h(
        "div",
        { className: "signed-out", role: "alert" },
        h("h1", null, "Sign in to see your usage"),
        h("p", null, "Your session has ended or you are not signed in. Sign in and you will come straight back to this view."),
        button,
      ),
    );
    this.freshness.el.hidden = true;
    button.focus();
  }

  private exportCsv(): void {
    const { period } = this.scope;
    const text = toCsv(
      { llm: this.llm.data, compute: this.compute.data, voice: this.voice.data, keys: this.keys.data },
      period,
    );
    download(`crabglamp-usage-${period.from}_${period.to}${this.filterSuffix()}.csv`, text);
  }

  /** A filtered export's file name says its filter: "_provider-openai_key-prod". */
  private filterSuffix(): string {
    const { state } = this.scope;
    const parts: string[] = [];
    if (state.admin) parts.push("all-accounts");
    else if (state.accountId) parts.push(`account-${slug(this.toolbar.viewer?.account?.name ?? state.accountId)}`);
    if (state.providers.length) parts.push(`provider-${state.providers.map(slug).join("+")}`);
    if (state.keyIds.length) {
      const name = (id: string) => this.keys.data?.keys.find((k) => k.id === id)?.name ?? id.slice(0, 8);
      parts.push(`key-${state.keyIds.map((id) => slug(name(id))).join("+")}`);
    }
    return parts.map((p) => `_${p}`).join("");
  }
}

new Dashboard($("#app"));
