// Anomalies the API detected in the period, each with the actions its own suggestion names, the
// key's figures when it was detected and now, and its state: open, acknowledged or resolved.
// Resolved ones stay in the list (the period's history), drawn apart.

import { execute } from "../api";
import { h, replace } from "../dom";
import { longDay, money, percent, timestamp } from "../format";
import { AnomaliesDocument, type AnomaliesQuery, type AnomalyKind, type AnomalyResolution, type LeakPolicy } from "../generated/graphql";
import type { Scope } from "../scope";
import { empty, messageOf, section, setState } from "../ui";
import { LEAK_POLICY_LABELS } from "./keys";
import { LoadedSection } from "./lifecycle";

export type Anomaly = AnomaliesQuery["anomalies"][number];

export const KIND_LABELS: Record<AnomalyKind, string> = {
  SPIKE_ON_QUIET_KEY: "Spike on a quiet key",
  CAP_TRAJECTORY: "Heading for the cap",
  RUNAWAY_DAY: "Runaway day",
};

const RESOLUTION_WORDS: Record<AnomalyResolution, string> = {
  ROTATED: "key rotated",
  CAP_CHANGED: "cap changed",
  SUSPENDED: "key suspended",
  DISMISSED: "dismissed",
};

export interface AnomalyMutations {
  acknowledge(id: string): Promise<void>;
  dismiss(id: string, reason: string): Promise<void>;
  restoreCap(id: string): Promise<void>;
  suspend(keyId: string, reason: string | null): Promise<void>;
  resume(keyId: string): Promise<void>;
  setLeakPolicy(keyId: string, policy: LeakPolicy): Promise<void>;
}

export interface AnomalyActions {
  keyName(keyId: string): string | null;
  /** The request log of the anomaly's day, for its key (and its agent, to find who spends). */
  openLog(anomaly: Anomaly, byAgent: boolean): void;
  rotate(keyId: string): void;
  raiseCap(keyId: string): void;
  /** The cap dialog, lowering, prefilled with `suggestedCents`. */
  lowerCap(keyId: string, suggestedCents: number): void;
  /** Something changed (state, key): the page reloads what it shows. */
  changed(): void;
}

/**
 * What "lower the cap" offers: what the key has spent this month (so it spends no more), never
 * above its current cap; whole cents, rounded down.
 */
export function lowerCapSuggestion(key: { accruedCents: number; spendCapCents: number | null }): number {
  const spent = Math.floor(key.accruedCents);
  return key.spendCapCents === null ? spent : Math.min(spent, Math.floor(key.spendCapCents));
}

/** "$12.37 of its $25.70 cap (48.1%)", or "$12.37 this month, no cap". */
function standing(figures: { accruedCents: number; spendCapCents: number | null; percentUsed: number | null }, its: boolean): string {
  if (figures.spendCapCents === null) return `${money(figures.accruedCents)} this month, no cap`;
  const share = figures.percentUsed === null ? "" : ` (${percent(figures.percentUsed)})`;
  return `${money(figures.accruedCents)} of ${its ? "its " : ""}${money(figures.spendCapCents)} cap${share}`;
}

function clock(iso: string): string {
  return `${timestamp(iso).slice(11, 16)} UTC`;
}

function when(iso: string): string {
  return `${longDay(iso.slice(0, 10))}, ${clock(iso)}`;
}

export class AnomaliesSection extends LoadedSection<Anomaly[]> {
  private reachBackTo: string | null = null;

  constructor(
    private readonly actions: AnomalyActions,
    private readonly mutations: AnomalyMutations,
  ) {
    super(
      section(
        "anomalies",
        "Anomalies",
        "Sudden spikes on quiet keys, spend heading for a cap, and runaway days, with what to do and what was done.",
      ),
      { label: "Loading anomalies", lines: 2 },
    );
  }

  protected override async fetch(scope: Scope, signal: AbortSignal): Promise<Anomaly[]> {
    const answer = await execute(AnomaliesDocument, { accountId: scope.accountId, ...scope.anomalyVars }, signal);
    return [...answer.anomalies].sort(
      (a, b) =>
        Number(a.state === "RESOLVED") - Number(b.state === "RESOLVED") ||
        b.date.localeCompare(a.date) ||
        b.severity - a.severity,
    );
  }

  protected override render(anomalies: Anomaly[], scope: Scope): void {
    this.reachBackTo = scope.anomaliesReachBackTo;
    this.draw(anomalies);
  }

  /** Key names arrive with the cards; redraw so that entries name their key. */
  refreshNames(): void {
    if (this.data) this.draw(this.data);
  }

  private draw(anomalies: Anomaly[]): void {
    // A live refresh redraws the list while someone may be typing why they dismiss one: their
    // form stays open, with its text and focus, on the redrawn entry.
    const open = this.body.querySelector<HTMLFormElement>("form.anomaly-dismiss:not([hidden])");
    const typing = open
      ? { id: open.dataset.anomalyId ?? "", text: open.querySelector("input")?.value ?? "", focused: open.contains(document.activeElement) }
      : null;
    this.drawList(anomalies);
    if (!typing) return;
    const again = [...this.body.querySelectorAll<HTMLFormElement>("form.anomaly-dismiss")].find((f) => f.dataset.anomalyId === typing.id);
    if (!again) return;
    again.hidden = false;
    const input = again.querySelector("input");
    if (input) {
      input.value = typing.text;
      if (typing.focused) input.focus();
    }
  }

  private drawList(anomalies: Anomaly[]): void {
    const unresolved = anomalies.filter((a) => a.state !== "RESOLVED");
    this.el.classList.toggle("has-anomalies", unresolved.length > 0);
    if (anomalies.length === 0) {
      setState(this.el, "empty");
      replace(
        this.body,
        empty(this.reachBackTo ? `Nothing unusual since ${longDay(this.reachBackTo)}` : "Nothing unusual in this period", "You will see leaked-key spikes, caps about to be reached and runaway days here."),
      );
      return;
    }
    setState(this.el, "ready");
    const since = this.reachBackTo
      ? h("p", { className: "hint anomaly-since" }, `The month has just begun: showing anomalies since ${longDay(this.reachBackTo)}.`)
      : null;
    replace(this.body, since, h("ul", { className: "anomaly-list", role: "list" }, anomalies.map((a) => this.item(a))));
  }

  /** Runs a mutation from a button, then reloads; a refusal is shown beside the buttons. */
  private act(button: HTMLButtonElement, problem: HTMLElement, run: () => Promise<void>): void {
    button.disabled = true;
    problem.textContent = "";
    run().then(
      () => this.actions.changed(),
      (error: unknown) => {
        button.disabled = false;
        problem.textContent = messageOf(error);
      },
    );
  }

  private item(anomaly: Anomaly): HTMLElement {
    const keyName = anomaly.keyId ? this.actions.keyName(anomaly.keyId) : null;
    const subject = keyName ? `key ${keyName}` : anomaly.keyId ? "a key" : "the account";
    const keyId = anomaly.keyId;
    const key = anomaly.key;
    const resolved = anomaly.state === "RESOLVED";
    const mayAct = anomaly.viewerMayAct && !resolved && key !== null && key.status !== "revoked";
    const problem = h("p", { className: "field-error", role: "alert" });
    const context = ` — ${KIND_LABELS[anomaly.kind]}, ${subject}, ${longDay(anomaly.date)}`;
    const button = (action: string, label: string, primary: boolean, onclick: (b: HTMLButtonElement) => void) => {
      const b = h(
        "button",
        { type: "button", className: `button button-small${primary ? "" : " button-quiet"}`, "data-action": action },
        label,
        h("span", { className: "visually-hidden" }, context),
      );
      b.addEventListener("click", () => onclick(b));
      return b;
    };
    // Each kind offers what its own suggestion names (CONTRACTS.md §3.2).
    const buttons: HTMLElement[] = [];
    if (anomaly.kind === "RUNAWAY_DAY") {
      if (mayAct && keyId && key) buttons.push(button("lower-cap", "Lower cap", true, () => this.actions.lowerCap(keyId, lowerCapSuggestion(key))));
      buttons.push(button("log", "Open log", !mayAct, () => this.actions.openLog(anomaly, false)));
    } else if (anomaly.kind === "SPIKE_ON_QUIET_KEY") {
      if (mayAct && keyId && key) {
        buttons.push(button("rotate", "Rotate key", true, () => this.actions.rotate(keyId)));
        if (key.status === "active") {
          buttons.push(
            button("suspend", "Suspend key", false, (b) => {
              if (!window.confirm(`Suspend ${subject}? Its requests are refused until an administrator resumes it.`)) return;
              this.act(b, problem, () => this.mutations.suspend(keyId, `It was suspended after a spike on ${longDay(anomaly.date)}.`));
            }),
          );
        }
      }
      buttons.push(button("log", "Open log", !mayAct, () => this.actions.openLog(anomaly, false)));
    } else {
      if (mayAct && keyId) buttons.push(button("raise-cap", "Raise cap", true, () => this.actions.raiseCap(keyId)));
      buttons.push(button("find-agent", "Find the agent", !mayAct, () => this.actions.openLog(anomaly, true)));
    }
    if (mayAct && anomaly.state === "OPEN") {
      buttons.push(button("acknowledge", "Acknowledge", false, (b) => this.act(b, problem, () => this.mutations.acknowledge(anomaly.id))));
    }
    const dismissForm = mayAct ? this.dismissForm(anomaly, problem) : null;
    if (dismissForm) {
      buttons.push(
        button("dismiss", "Dismiss…", false, () => {
          dismissForm.hidden = false;
          dismissForm.querySelector("input")?.focus();
        }),
      );
    }

    const detected = anomaly.atDetection
      ? h("p", { className: "anomaly-detected" }, h("strong", null, `Detected ${when(anomaly.detectedAt)}: `), standing(anomaly.atDetection, true))
      : h("p", { className: "anomaly-detected" }, h("strong", null, `Detected ${when(anomaly.detectedAt)}`));
    const nowLine = key
      ? h(
          "p",
          { className: "anomaly-now" },
          h("strong", null, "Now: "),
          standing(key, false),
          key.status !== "active" ? h("span", { className: "badge badge-muted" }, key.status) : null,
        )
      : null;
    return h(
      "li",
      {
        className: `anomaly anomaly-${anomaly.kind.toLowerCase()}${resolved ? " is-resolved" : ""}`,
        "data-kind": anomaly.kind,
        "data-anomaly-id": anomaly.id,
        "data-anomaly-state": anomaly.state.toLowerCase(),
      },
      h(
        "div",
        { className: "anomaly-text" },
        h(
          "p",
          { className: "anomaly-title" },
          h("strong", null, KIND_LABELS[anomaly.kind]),
          ` · ${subject} · ${longDay(anomaly.date)} `,
          h("span", { className: `badge anomaly-state state-${anomaly.state.toLowerCase()}` }, anomaly.state === "OPEN" ? "Open" : anomaly.state === "ACKNOWLEDGED" ? "Acknowledged" : "Resolved"),
        ),
        h("p", null, anomaly.message),
        h("div", { className: "anomaly-figures" }, detected, nowLine),
        this.policyLine(anomaly, mayAct || (anomaly.viewerMayAct && key !== null && key.status !== "revoked"), problem),
        this.stateLine(anomaly),
        resolved ? null : h("p", { className: "hint" }, `Suggested: ${anomaly.suggestedAction}`),
      ),
      h("div", { className: "anomaly-side" }, h("div", { className: "anomaly-actions" }, ...buttons), dismissForm, problem),
    );
  }

  private stateLine(anomaly: Anomaly): HTMLElement | null {
    if (anomaly.state === "ACKNOWLEDGED" && anomaly.acknowledgedAt) {
      return h("p", { className: "anomaly-status" }, `Acknowledged by ${anomaly.acknowledgedBy ?? "someone"} · ${when(anomaly.acknowledgedAt)}`);
    }
    if (anomaly.state === "RESOLVED" && anomaly.resolution) {
      const by = anomaly.resolvedBy ? ` by ${anomaly.resolvedBy}` : "";
      const at = anomaly.resolvedAt ? ` · ${when(anomaly.resolvedAt)}` : "";
      const reason = anomaly.resolution === "DISMISSED" && anomaly.resolutionReason ? `: “${anomaly.resolutionReason}”` : "";
      return h("p", { className: "anomaly-status", "data-resolution": anomaly.resolution }, `Resolved — ${RESOLUTION_WORDS[anomaly.resolution]}${by}${at}${reason}`);
    }
    return null;
  }

  private policyLine(anomaly: Anomaly, mayAct: boolean, problem: HTMLElement): HTMLElement | null {
    const policy = anomaly.policyAction;
    if (!policy) {
      // A leak's anomaly says what the key's policy is, even when it only alerted.
      if (anomaly.kind !== "SPIKE_ON_QUIET_KEY" || !anomaly.key) return null;
      return h(
        "p",
        { className: "anomaly-policy", "data-leak-policy": anomaly.key.leakPolicy },
        h("strong", null, "Leak policy: "),
        `${LEAK_POLICY_LABELS[anomaly.key.leakPolicy].toLowerCase()} (chosen on the key's card).`,
      );
    }
    const undo =
      mayAct && policy.revertedAt === null && anomaly.keyId
        ? h(
            "button",
            { type: "button", className: "button button-small button-quiet", "data-action": policy.action === "SUSPENDED" ? "resume" : "restore-cap" },
            policy.action === "SUSPENDED" ? "Resume key" : "Restore cap",
          )
        : null;
    const keyId = anomaly.keyId;
    undo?.addEventListener("click", () => {
      if (!keyId) return;
      // Resuming by hand and restoring through the anomaly end the same way: the key as before.
      this.act(undo, problem, () => (policy.action === "SUSPENDED" ? this.mutations.resume(keyId) : this.mutations.restoreCap(anomaly.id)));
    });
    return h("p", { className: "anomaly-policy", "data-policy-action": policy.action }, h("strong", null, "Leak policy: "), policy.summary, " ", undo);
  }

  private dismissForm(anomaly: Anomaly, problem: HTMLElement): HTMLFormElement {
    const id = `dismiss-${anomaly.id.replace(/[^a-zA-Z0-9-]/g, "-")}`;
    const input = h("input", { type: "text", id, maxlength: "500", required: true, placeholder: "e.g. a planned load test" });
    const submit = h("button", { type: "submit", className: "button button-small" }, "Dismiss");
    const cancel = h("button", { type: "button", className: "button button-small button-quiet" }, "Cancel");
    const form = h("form", { className: "anomaly-dismiss", hidden: true, "data-anomaly-id": anomaly.id }, h("label", { for: id }, "Why is this not a problem?"), input, submit, cancel);
    cancel.addEventListener("click", () => {
      form.hidden = true;
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const reason = input.value.trim();
      if (!reason) {
        problem.textContent = "Say why, so that others know.";
        return;
      }
      this.act(submit, problem, () => this.mutations.dismiss(anomaly.id, reason));
    });
    return form;
  }
}
