// The period picker, the account switcher, the provider and key filters, and CSV export.

import { execute } from "../api";
import { h, replace } from "../dom";
import { AllAccountsDocument, FilterOptionsDocument, type FilterOptionsQuery } from "../generated/graphql";
import type { Scope } from "../scope";
import { PRESETS, type Preset, type ViewState, isDay, daysBetween } from "../state";
import { monthName } from "../format";
import { isAbort } from "../ui";

export interface Option {
  value: string;
  label: string;
  note?: string | null;
}

/** A dropdown of checkboxes built on <details>: keyboard- and screen-reader-friendly as is. */
export class MultiSelect {
  readonly el: HTMLDetailsElement;
  private readonly summary: HTMLElement;
  private readonly list: HTMLElement;
  private options: Option[] = [];
  private selected: string[] = [];

  constructor(
    readonly id: string,
    private readonly noun: string,
    private readonly allLabel: string,
    private readonly onChange: (values: string[]) => void,
  ) {
    this.summary = h("summary", { className: "select-like", id: `${id}-summary` });
    this.list = h("div", { className: "menu-options", role: "group", "aria-labelledby": `${id}-summary` });
    const clear = h("button", { type: "button", className: "link-button" }, "Show all");
    clear.addEventListener("click", () => this.commit([]));
    this.el = h("details", { className: "multi", id }, this.summary, h("div", { className: "menu" }, this.list, h("div", { className: "menu-foot" }, clear)));
    this.el.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.el.open) {
        this.el.open = false;
        this.summary.focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (this.el.open && !this.el.contains(event.target as Node)) this.el.open = false;
    });
  }

  set(options: Option[], selected: string[]): void {
    const known = new Set(options.map((o) => o.value));
    this.options = [...options, ...selected.filter((v) => !known.has(v)).map((v) => ({ value: v, label: v, note: "not in this account" }))];
    this.selected = selected;
    this.draw();
  }

  private commit(values: string[]): void {
    this.selected = values;
    this.draw();
    this.onChange(values);
  }

  private draw(): void {
    const chosen = this.options.filter((o) => this.selected.includes(o.value));
    const text = chosen.length === 0 ? this.allLabel : chosen.length === 1 ? (chosen[0]?.label ?? "") : `${chosen.length} selected`;
    replace(this.summary, h("span", { className: "select-label" }, `${this.noun}:`), " ", h("span", { className: "select-value" }, text));
    this.summary.classList.toggle("is-filtered", chosen.length > 0);
    if (this.options.length === 0) {
      replace(this.list, h("p", { className: "muted menu-empty" }, `No ${this.noun.toLowerCase()} in this view`));
      return;
    }
    // Redrawn while someone may be using it from the keyboard: keep focus on the same option.
    const focused = this.list.contains(document.activeElement) ? (document.activeElement as HTMLInputElement).value : null;
    replace(
      this.list,
      this.options.map((option) => {
        const box = h("input", { type: "checkbox", value: option.value, checked: this.selected.includes(option.value) });
        box.addEventListener("change", () => {
          const values = this.options.map((o) => o.value).filter((v) => (v === option.value ? box.checked : this.selected.includes(v)));
          this.commit(values);
        });
        return h("label", { className: "menu-option" }, box, h("span", null, option.label), option.note ? h("span", { className: "muted small" }, option.note) : null);
      }),
    );
    if (focused !== null) this.list.querySelector<HTMLInputElement>(`input[value="${CSS.escape(focused)}"]`)?.focus();
  }
}

export interface ToolbarHost {
  change(patch: Partial<ViewState>): void;
  exportCsv(): void;
}

/** Who is looking at which account: the page's header, and what it may offer. */
export type Viewer = FilterOptionsQuery["viewer"];

/** The picker's value for the platform-wide view (no account). */
const ALL_ACCOUNTS = "*";

export class Toolbar {
  readonly el: HTMLElement;
  private readonly range: HTMLSelectElement;
  private readonly custom: HTMLElement;
  private readonly from: HTMLInputElement;
  private readonly to: HTMLInputElement;
  private readonly rangeError: HTMLElement;
  private readonly account: HTMLSelectElement;
  private readonly accountField: HTMLElement;
  readonly providers: MultiSelect;
  readonly keys: MultiSelect;
  private readonly clear: HTMLButtonElement;
  readonly exportButton: HTMLButtonElement;
  /** The last answer's viewer: null before the first. */
  viewer: Viewer | null = null;
  /** The month named in the URL, offered in the period picker while it is the view. */
  private readonly monthOption = h("option", { value: "month", hidden: true });

  constructor(private readonly host: ToolbarHost) {
    this.range = h(
      "select",
      { id: "range", name: "range" },
      ...PRESETS.map((p) => h("option", { value: p.value }, p.label)),
      this.monthOption,
      h("option", { value: "custom" }, "Custom range…"),
    );
    this.range.addEventListener("change", () => {
      if (this.range.value === "month") return;
      if (this.range.value === "custom") {
        this.custom.hidden = false;
        this.from.focus();
        return;
      }
      this.custom.hidden = true;
      this.host.change({ preset: this.range.value as Preset, month: null, from: null, to: null });
    });
    this.from = h("input", { type: "date", id: "range-from", name: "from", required: true });
    this.to = h("input", { type: "date", id: "range-to", name: "to", required: true });
    this.rangeError = h("p", { className: "field-error", id: "range-error", role: "alert" });
    const apply = h("button", { type: "submit", className: "button button-small" }, "Apply");
    this.custom = h(
      "form",
      { className: "custom-range", "aria-label": "Custom date range" },
      h("label", { for: "range-from" }, "From"),
      this.from,
      h("label", { for: "range-to" }, "To"),
      this.to,
      apply,
      this.rangeError,
    );
    this.custom.addEventListener("submit", (event) => {
      event.preventDefault();
      const from = this.from.value;
      const to = this.to.value;
      if (!isDay(from) || !isDay(to) || from > to) {
        this.rangeError.textContent = "Choose a start day on or before the end day.";
        return;
      }
      if (daysBetween(from, to).length > 366) {
        this.rangeError.textContent = "A range can span at most 366 days.";
        return;
      }
      this.rangeError.textContent = "";
      this.host.change({ preset: null, month: null, from, to });
    });
    this.account = h("select", { id: "account", name: "account" });
    this.account.addEventListener("change", () => {
      const value = this.account.value;
      if (value === ALL_ACCOUNTS) this.host.change({ accountId: null, admin: true, keyIds: [] });
      else this.host.change({ accountId: value || null, admin: false, keyIds: [] });
    });
    this.accountField = h("div", { className: "field", hidden: true }, h("label", { for: "account" }, "Account"), this.account);
    this.providers = new MultiSelect("provider-filter", "Provider", "All providers", (values) => this.host.change({ providers: values }));
    this.keys = new MultiSelect("key-filter", "Keys", "All keys", (values) => this.host.change({ keyIds: values }));
    this.clear = h("button", { type: "button", className: "link-button", hidden: true }, "Clear filters");
    this.clear.addEventListener("click", () => this.host.change({ providers: [], keyIds: [] }));
    this.exportButton = h("button", { type: "button", className: "button button-quiet", id: "export-csv" }, "Export CSV");
    this.exportButton.addEventListener("click", () => this.host.exportCsv());
    this.el = h(
      "div",
      { className: "toolbar", role: "group", "aria-label": "Period and filters" },
      this.accountField,
      h("div", { className: "field" }, h("label", { for: "range" }, "Period"), this.range),
      this.custom,
      h("div", { className: "field field-filters" }, h("span", { className: "field-label", "aria-hidden": "true" }, "Filters"), this.providers.el, this.keys.el, this.clear),
      h("div", { className: "toolbar-end" }, this.exportButton),
    );
  }

  show(scope: Scope): void {
    const { state, period } = scope;
    this.monthOption.hidden = state.month === null;
    this.monthOption.textContent = state.month ? monthName(state.month) : "";
    this.range.value = state.preset ?? (state.month ? "month" : "custom");
    this.custom.hidden = state.preset !== null || state.month !== null;
    this.from.value = period.from;
    this.to.value = period.to;
    this.clear.hidden = state.providers.length === 0 && state.keyIds.length === 0;
  }

  async load(scope: Scope, signal: AbortSignal): Promise<void> {
    try {
      const answer = await execute(FilterOptionsDocument, { accountId: scope.accountId, admin: scope.admin || null, ...scope.periodVars }, signal);
      this.viewer = answer.viewer;
      const providers = new Set<string>();
      for (const key of answer.virtualKeys) if (key.provider) providers.add(key.provider);
      for (const model of answer.usage.llm.models) providers.add(model.provider);
      this.providers.set([...providers].sort().map((p) => ({ value: p, label: p })), scope.state.providers);
      // With providers chosen, offer the keys that can serve them (a key without a provider
      // serves any); keys already chosen stay listed so they can be unticked.
      const chosen = scope.state.providers;
      this.keys.set(
        answer.virtualKeys
          .filter((k) => chosen.length === 0 || k.provider === null || chosen.includes(k.provider) || scope.state.keyIds.includes(k.id))
          .map((k) => ({ value: k.id, label: k.name, note: k.provider ?? "any provider" })),
        scope.state.keyIds,
      );
      const platformAdmin = answer.viewer.isPlatformAdmin;
      // A platform admin may look at every account, and at all of them at once.
      const accounts = platformAdmin ? (await execute(AllAccountsDocument, {}, signal)).accounts : answer.accounts;
      const current = scope.admin ? ALL_ACCOUNTS : (scope.accountId ?? answer.viewer.account?.id ?? "");
      const known = current === ALL_ACCOUNTS || accounts.some((a) => a.id === current);
      replace(
        this.account,
        known ? null : h("option", { value: "" }, "Choose an account"),
        platformAdmin ? h("option", { value: ALL_ACCOUNTS }, "All accounts (platform-wide)") : null,
        accounts.map((a) => h("option", { value: a.id }, a.name)),
      );
      this.account.value = known ? current : "";
      this.accountField.hidden = !platformAdmin && accounts.length < 2;
      this.keys.el.hidden = scope.admin;
    } catch (error) {
      if (isAbort(error)) return;
      throw error;
    }
  }
}
