// Anomalies the API detected in the period, each with the action that answers it.

import { execute } from "../api";
import { h, replace } from "../dom";
import { longDay } from "../format";
import { AnomaliesDocument, type AnomaliesQuery, type AnomalyKind } from "../generated/graphql";
import type { Scope } from "../scope";
import { empty, section, setState } from "../ui";
import { LoadedSection } from "./lifecycle";

export type Anomaly = AnomaliesQuery["anomalies"][number];

export const KIND_LABELS: Record<AnomalyKind, string> = {
  SPIKE_ON_QUIET_KEY: "Spike on a quiet key",
  CAP_TRAJECTORY: "Heading for the cap",
  RUNAWAY_DAY: "Runaway day",
};

export interface AnomalyActions {
  keyName(keyId: string): string | null;
  openLog(anomaly: Anomaly): void;
  rotate(keyId: string): void;
  raiseCap(keyId: string): void;
}

export class AnomaliesSection extends LoadedSection<Anomaly[]> {
  private reachBackTo: string | null = null;

  constructor(private readonly actions: AnomalyActions) {
    super(
      section(
        "anomalies",
        "Anomalies",
        "Sudden spikes on quiet keys, spend heading for a cap, and runaway days, with what to do.",
      ),
      { label: "Loading anomalies", lines: 2 },
    );
  }

  protected override async fetch(scope: Scope, signal: AbortSignal): Promise<Anomaly[]> {
    const answer = await execute(AnomaliesDocument, { accountId: scope.accountId, ...scope.anomalyVars }, signal);
    return [...answer.anomalies].sort((a, b) => b.date.localeCompare(a.date) || b.severity - a.severity);
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
    this.el.classList.toggle("has-anomalies", anomalies.length > 0);
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

  private item(anomaly: Anomaly): HTMLElement {
    const keyName = anomaly.keyId ? this.actions.keyName(anomaly.keyId) : null;
    const subject = keyName ? `key ${keyName}` : anomaly.keyId ? "a key" : "the account";
    const primary = anomaly.kind === "SPIKE_ON_QUIET_KEY" ? "rotate" : anomaly.kind === "CAP_TRAJECTORY" ? "cap" : "log";
    const button = (kind: "rotate" | "cap" | "log", label: string, onclick: () => void) =>
      h(
        "button",
        { type: "button", className: `button button-small${kind === primary ? "" : " button-quiet"}`, onclick, "data-action": kind },
        label,
        h("span", { className: "visually-hidden" }, ` — ${KIND_LABELS[anomaly.kind]}, ${subject}, ${longDay(anomaly.date)}`),
      );
    const keyId = anomaly.keyId;
    return h(
      "li",
      { className: `anomaly anomaly-${anomaly.kind.toLowerCase()}`, "data-kind": anomaly.kind },
      h(
        "div",
        { className: "anomaly-text" },
        h("p", { className: "anomaly-title" }, h("strong", null, KIND_LABELS[anomaly.kind]), ` · ${subject} · ${longDay(anomaly.date)}`),
        h("p", null, anomaly.message),
        h("p", { className: "hint" }, `Suggested: ${anomaly.suggestedAction}`),
      ),
      h(
        "div",
        { className: "anomaly-actions" },
        button("log", "Open log", () => this.actions.openLog(anomaly)),
        keyId ? button("rotate", "Rotate key", () => this.actions.rotate(keyId)) : null,
        keyId ? button("cap", "Raise cap", () => this.actions.raiseCap(keyId)) : null,
      ),
    );
  }
}
