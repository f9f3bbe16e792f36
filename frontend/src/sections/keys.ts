// A card per virtual key: this month's spend against its cap as a bar, and the period's spend.

import { execute } from "../api";
import { h, replace } from "../dom";
import { count, exactMoney, money, percent, toMicros } from "../format";
import { KeyCardsDocument, type KeyCardsQuery, type LeakPolicy } from "../generated/graphql";
import type { Scope } from "../scope";
import { today } from "../state";
import { empty, section, setState } from "../ui";
import { LoadedSection } from "./lifecycle";

export type VirtualKey = KeyCardsQuery["virtualKeys"][number];

export interface KeyCard {
  key: VirtualKey;
  periodMicros: number;
  periodRequests: number;
}

export interface KeysData {
  keys: VirtualKey[];
  cards: KeyCard[];
  /** The caller administers the account: the cards offer Raise cap and Rotate. */
  mayAdminister: boolean;
}

export type CapLevel = "none" | "ok" | "warn" | "danger" | "over";

/**
 * Warning colours near the cap: amber from 75 %, red from 90 %, "over" at 100 % — or as soon as
 * what is left of the cap is less than a typical request of the key costs (`typicalMicros`, its
 * mean in the period), since the proxy then refuses the key's requests already.
 */
export function capLevel(percentUsed: number | null, headroomMicros: number | null = null, typicalMicros = 0): CapLevel {
  if (percentUsed === null) return "none";
  if (percentUsed >= 100) return "over";
  if (headroomMicros !== null && typicalMicros > 0 && headroomMicros < typicalMicros) return "over";
  if (percentUsed >= 90) return "danger";
  if (percentUsed >= 75) return "warn";
  return "ok";
}

const LEVEL_WORDS: Record<CapLevel, string> = {
  none: "No cap",
  ok: "Within cap",
  warn: "Nearing cap",
  danger: "Close to cap",
  over: "Cap reached",
};

export interface KeyActions {
  raiseCap(key: VirtualKey): void;
  rotate(key: VirtualKey): void;
  openKeyLog?(key: VirtualKey): void;
  /** A suspended key (by hand or by its leak policy) works again. */
  resume(key: VirtualKey): Promise<void>;
  setLeakPolicy(key: VirtualKey, policy: LeakPolicy): Promise<void>;
}

export const LEAK_POLICY_LABELS: Record<LeakPolicy, string> = {
  NOTIFY: "Alert only",
  SUSPEND: "Suspend the key",
  LOWER_CAP: "Lower its cap to what it spent",
};

export class KeysSection extends LoadedSection<KeysData> {
  /** The last save's outcome per key: a save reloads the dashboard, which redraws every card, and
   * the outcome has to outlive that redraw or the user never sees "Saved". */
  private readonly policyStatus = new Map<string, string>();

  constructor(private readonly actions: KeyActions) {
    super(
      section(
        "keys",
        "Virtual keys",
        "Each key's spend this calendar month against its monthly cap, and what it spent in the selected period.",
      ),
      { label: "Loading virtual keys", lines: 3 },
    );
  }

  protected override async fetch(scope: Scope, signal: AbortSignal): Promise<KeysData> {
    const answers = await Promise.all(
      scope.llm.map((filter) => execute(KeyCardsDocument, { accountId: scope.accountId, filter }, signal)),
    );
    const keys = answers[0]?.virtualKeys ?? [];
    const spent = new Map<string, { micros: number; requests: number }>();
    for (const answer of answers) {
      for (const k of answer.usage.llm.keys) {
        const s = spent.get(k.keyId) ?? { micros: 0, requests: 0 };
        s.micros += toMicros(k.totalCents);
        s.requests += k.requestCount;
        spent.set(k.keyId, s);
      }
    }
    const { keyIds, providers } = scope.state;
    const cards = keys
      .filter((k) => keyIds.length === 0 || keyIds.includes(k.id))
      .filter((k) => providers.length === 0 || k.provider === null || providers.includes(k.provider))
      .map((key) => ({ key, periodMicros: spent.get(key.id)?.micros ?? 0, periodRequests: spent.get(key.id)?.requests ?? 0 }))
      .sort(
        (a, b) =>
          Number(a.key.status === "revoked") - Number(b.key.status === "revoked") ||
          (b.key.percentUsed ?? -1) - (a.key.percentUsed ?? -1) ||
          b.key.accruedCents - a.key.accruedCents ||
          a.key.name.localeCompare(b.key.name),
      );
    const mayAdminister = answers[0]?.viewer.role === "ADMIN";
    return { keys, cards, mayAdminister };
  }

  protected override render(data: KeysData, scope: Scope): void {
    if (data.keys.length === 0) {
      setState(this.el, "empty");
      replace(
        this.body,
        empty("No virtual keys yet", h("span", null, "Create one with ", h("code", null, "crabglamp key create --account ID --name NAME --cap CENTS"), ", then send requests through the proxy with its secret.")),
      );
      return;
    }
    if (data.cards.length === 0) {
      setState(this.el, "empty");
      replace(this.body, empty("No key matches the filters", "Clear the provider or key filter to see every key."));
      return;
    }
    setState(this.el, "ready");
    const periodLabel = scope.period.month === today().slice(0, 7) ? "This month" : "In period";
    replace(
      this.body,
      data.mayAdminister ? null : h("p", { className: "hint member-note" }, "You can read this account's keys; only its administrators can rotate them or change their caps."),
      h("ul", { className: "key-grid", role: "list" }, data.cards.map((card) => this.card(card, periodLabel, data.mayAdminister))),
    );
  }

  private card({ key, periodMicros, periodRequests }: KeyCard, periodLabel: string, mayAdminister: boolean): HTMLElement {
    const headroom = key.spendCapCents === null ? null : toMicros(key.spendCapCents) - toMicros(key.accruedCents);
    const typical = periodRequests > 0 ? periodMicros / periodRequests : 0;
    const level = capLevel(key.percentUsed, headroom, typical);
    const revoked = key.status === "revoked";
    const suspended = key.status === "suspended";
    const pct = key.percentUsed;
    const bar =
      pct === null
        ? h("p", { className: "cap-none" }, key.spendCapCents === null ? "No spend cap" : "Cap of $0.00: every request is refused")
        : h(
            "div",
            { className: "cap" },
            h(
              "div",
              {
                className: `meter meter-${level}`,
                role: "progressbar",
                "aria-valuemin": 0,
                "aria-valuemax": 100,
                "aria-valuenow": Math.min(100, Math.round(pct * 10) / 10),
                "aria-valuetext": `${percent(pct)} of the monthly cap used (${LEVEL_WORDS[level]})`,
                "aria-label": `${key.name}: share of the monthly cap used`,
              },
              h("span", { style: `width:${Math.min(100, Math.max(pct, pct > 0 ? 1 : 0))}%` }),
            ),
            h(
              "p",
              { className: `cap-line level-${level}` },
              h("span", { className: "percent", "data-percent": pct }, percent(pct)),
              h("span", { className: "level-word" }, LEVEL_WORDS[level]),
            ),
            // The proxy's own words (spend_cap_exceeded), so the card and the refusal agree.
            level === "over" && key.spendCapCents !== null
              ? h(
                  "p",
                  { className: "cap-reached", role: "note" },
                  `This virtual key's monthly spend cap of ${money(key.spendCapCents)} is reached: requests are refused (spend_cap_exceeded). Raise the cap or wait for next month.`,
                )
              : null,
          );
    return h(
      "li",
      { className: `key-card${revoked ? " is-revoked" : ""} level-${level}`, "data-key-id": key.id, "aria-label": `Key ${key.name}` },
      h(
        "div",
        { className: "key-head" },
        h("h3", null, key.name),
        h("span", { className: "badge" }, key.provider ?? "any provider"),
        revoked || suspended ? h("span", { className: `badge badge-muted key-status-${key.status}` }, key.status) : null,
      ),
      suspended ? h("p", { className: "key-suspended", role: "note" }, key.suspendedReason ?? "This key is suspended: its requests are refused.") : null,
      key.secretPrefix ? h("p", { className: "key-prefix" }, h("code", null, `${key.secretPrefix}…`)) : null,
      h(
        "dl",
        { className: "key-figures" },
        h(
          "div",
          null,
          h("dt", null, "Accrued this month"),
          h("dd", { className: "accrued figure", "data-cents": key.accruedCents, title: exactMoney(key.accruedCents) }, money(key.accruedCents)),
          // What the cap counts: LLM requests and speech made with the key.
          h("dd", { className: "figure-note" }, "LLM + voice through this key"),
        ),
        h(
          "div",
          null,
          h("dt", null, "Monthly cap"),
          h("dd", { className: "cap-amount figure", "data-cents": key.spendCapCents ?? "" }, key.spendCapCents === null ? "None" : money(key.spendCapCents)),
        ),
      ),
      bar,
      h(
        "p",
        { className: "key-period" },
        `LLM ${periodLabel.toLowerCase()}: `,
        h("span", { className: "period-spend figure", "data-cents": periodMicros / 1e6, title: exactMoney(periodMicros / 1e6) }, money(periodMicros / 1e6)),
        " · ",
        h("span", { className: "period-requests", "data-count": periodRequests }, `${count(periodRequests)} request${periodRequests === 1 ? "" : "s"}`),
      ),
      revoked || !mayAdminister ? null : this.leakPolicy(key),
      revoked || !mayAdminister
        ? null
        : h(
            "div",
            { className: "key-actions" },
            suspended ? this.resumeButton(key) : null,
            h("button", { type: "button", className: "button button-small", onclick: () => this.actions.raiseCap(key) }, key.spendCapCents === null ? "Set cap" : "Raise cap", h("span", { className: "visually-hidden" }, ` of ${key.name}`)),
            h("button", { type: "button", className: "button button-small button-quiet", onclick: () => this.actions.rotate(key) }, "Rotate", h("span", { className: "visually-hidden" }, ` ${key.name}`)),
          ),
    );
  }

  private resumeButton(key: VirtualKey): HTMLElement {
    const button = h("button", { type: "button", className: "button button-small", "data-action": "resume" }, "Resume", h("span", { className: "visually-hidden" }, ` ${key.name}`));
    button.addEventListener("click", () => {
      button.disabled = true;
      this.actions.resume(key).catch(() => {
        button.disabled = false;
      });
    });
    return button;
  }

  /** What a spike on this key does: a small select, saved on change. */
  private leakPolicy(key: VirtualKey): HTMLElement {
    const id = `leak-policy-${key.id}`;
    const select = h(
      "select",
      { id, className: "leak-policy", "data-key-id": key.id },
      (Object.keys(LEAK_POLICY_LABELS) as LeakPolicy[]).map((policy) =>
        h("option", { value: policy, selected: policy === key.leakPolicy }, LEAK_POLICY_LABELS[policy]),
      ),
    );
    const status = h("span", { className: "hint leak-policy-status", role: "status" }, this.policyStatus.get(key.id) ?? "");
    const tell = (message: string) => {
      this.policyStatus.set(key.id, message);
      status.textContent = message;
    };
    select.addEventListener("change", () => {
      const chosen = select.value as LeakPolicy;
      select.disabled = true;
      tell("Saving…");
      this.actions.setLeakPolicy(key, chosen).then(
        () => {
          select.disabled = false;
          tell("Saved");
        },
        (error: unknown) => {
          select.disabled = false;
          select.value = key.leakPolicy;
          tell(error instanceof Error ? error.message : "Not saved");
        },
      );
    });
    return h("p", { className: "key-leak-policy" }, h("label", { for: id }, "On a spike (leak?): "), select, " ", status);
  }
}
