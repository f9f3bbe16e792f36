// Rotating a key and raising its cap: each behind a confirmation, the new secret shown once.

import { h, replace } from "../dom";
import { exactMoney, money, percent } from "../format";
import { messageOf } from "../ui";

export interface KeySummary {
  id: string;
  name: string;
  provider: string | null;
  secretPrefix: string | null;
  spendCapCents: number | null;
  accruedCents: number;
  percentUsed: number | null;
}

export interface Rotated {
  secret: string;
  secretPrefix: string | null;
  previousSecretExpiresAt: string | null;
}

export interface KeyMutations {
  rotate(keyId: string, gracePeriodSeconds: number): Promise<Rotated>;
  setCap(keyId: string, spendCapCents: number): Promise<void>;
}

/** The grace periods the dialog offers; the API takes 0 to 30 days (rotateVirtualKey). */
export const GRACE_PERIODS: { seconds: number; label: string }[] = [
  { seconds: 0, label: "None: the old secret stops at once" },
  { seconds: 3600, label: "1 hour" },
  { seconds: 86_400, label: "24 hours" },
  { seconds: 7 * 86_400, label: "7 days" },
  { seconds: 30 * 86_400, label: "30 days (the longest)" },
];

/** The largest monthly cap the API accepts: 1,000,000,000 cents (keys.check_spend_cap). */
export const MAX_CAP_CENTS = 1_000_000_000;

function dialogShell(id: string, title: string): { el: HTMLDialogElement; body: HTMLElement; heading: HTMLElement } {
  const heading = h("h2", { id: `${id}-title` }, title);
  const body = h("div", { className: "dialog-body" });
  const close = h("button", { type: "button", className: "icon-button", "aria-label": "Close" }, "×");
  const el = h("dialog", { className: "dialog", id, "aria-labelledby": `${id}-title` }, h("div", { className: "dialog-head" }, heading, close), body);
  // The body is wiped before closing: a dialog's "close" event arrives a task later, and what
  // the dialog held (a new secret) must be gone the moment it is no longer shown.
  close.addEventListener("click", () => {
    replace(body);
    el.close();
  });
  return { el, body, heading };
}

export class RotateKeyDialog {
  readonly el: HTMLDialogElement;
  private readonly body: HTMLElement;
  private readonly heading: HTMLElement;
  onDone: () => void = () => {};

  constructor(private readonly mutations: KeyMutations) {
    ({ el: this.el, body: this.body, heading: this.heading } = dialogShell("rotate-dialog", "Rotate key"));
    // The secret must not outlive the dialog: closing it wipes the DOM that held it.
    this.el.addEventListener("close", () => replace(this.body));
  }

  open(key: KeySummary): void {
    this.heading.textContent = `Rotate key “${key.name}”?`;
    const confirm = h("button", { type: "button", className: "button button-danger" }, "Rotate key");
    const cancel = h("button", { type: "button", className: "button button-quiet" }, "Cancel");
    const problem = h("p", { className: "field-error", role: "alert" });
    const grace = h(
      "select",
      { id: "rotate-grace", name: "grace", "aria-describedby": "rotate-grace-help" },
      GRACE_PERIODS.map((g) => h("option", { value: g.seconds }, g.label)),
    );
    cancel.addEventListener("click", () => this.el.close());
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      confirm.textContent = "Rotating…";
      problem.textContent = "";
      try {
        const rotated = await this.mutations.rotate(key.id, Number(grace.value));
        this.showSecret(key, rotated);
        this.onDone();
      } catch (error) {
        problem.textContent = messageOf(error);
        confirm.disabled = false;
        confirm.textContent = "Rotate key";
      }
    });
    replace(
      this.body,
      h("p", null, "A new secret replaces ", key.secretPrefix ? h("code", null, `${key.secretPrefix}…`) : "the current one", ". Update every agent that uses this key with the new secret."),
      h("div", { className: "field" }, h("label", { for: "rotate-grace" }, "Old secret keeps working for"), grace),
      h("p", { className: "hint", id: "rotate-grace-help" }, "A grace period lets agents switch to the new secret without failing requests. If you suspect the secret leaked, choose none: the old secret is refused at once."),
      problem,
      h("div", { className: "dialog-actions" }, cancel, confirm),
    );
    if (!this.el.open) this.el.showModal();
    confirm.focus();
  }

  private showSecret(key: KeySummary, rotated: Rotated): void {
    this.heading.textContent = `New secret for “${key.name}”`;
    const field = h("input", { type: "text", readonly: true, value: rotated.secret, size: rotated.secret.length, className: "secret", id: "new-secret", "aria-describedby": "secret-warning", spellcheck: "false", autocomplete: "off" });
    const copied = h("span", { className: "copied", role: "status" });
    const copy = h("button", { type: "button", className: "button" }, "Copy");
    copy.addEventListener("click", async () => {
      field.select();
      try {
        await navigator.clipboard.writeText(rotated.secret);
        copied.textContent = "Copied";
      } catch {
        // Clipboard access can be refused (permissions, insecure origin): the text stays selected.
        copied.textContent = "Press Ctrl+C to copy the selected secret";
      }
    });
    const done = h("button", { type: "button", className: "button button-quiet" }, "Done");
    done.addEventListener("click", () => {
      replace(this.body);
      this.el.close();
    });
    replace(
      this.body,
      h("p", { id: "secret-warning", className: "warning" }, h("strong", null, "Copy it now: "), "this is the only time the secret is shown. We keep only its hash."),
      h("div", { className: "secret-row" }, h("label", { for: "new-secret", className: "visually-hidden" }, "New secret"), field, copy),
      copied,
      rotated.previousSecretExpiresAt
        ? h("p", { className: "hint" }, `The previous secret keeps working until ${rotated.previousSecretExpiresAt.replace("T", " ").slice(0, 16)} UTC.`)
        : h("p", { className: "hint" }, "The previous secret no longer works."),
      h("div", { className: "dialog-actions" }, done),
    );
    field.focus();
    field.select();
  }
}

export class RaiseCapDialog {
  readonly el: HTMLDialogElement;
  private readonly body: HTMLElement;
  private readonly heading: HTMLElement;
  onDone: () => void = () => {};

  constructor(private readonly mutations: KeyMutations) {
    ({ el: this.el, body: this.body, heading: this.heading } = dialogShell("cap-dialog", "Raise spend cap"));
  }

  /**
   * Raise (or set) the cap, prefilled above it; or, with `lowerTo` (a runaway day's action),
   * lower it, prefilled with that amount of cents (what the key has spent, never above its cap).
   */
  open(key: KeySummary, lowerTo: number | null = null): void {
    const lowering = lowerTo !== null;
    this.heading.textContent = lowering
      ? `Lower the monthly cap of “${key.name}”`
      : `${key.spendCapCents === null ? "Set" : "Raise"} the monthly cap of “${key.name}”`;
    const current = key.spendCapCents;
    const raised = current === null ? Math.max(key.accruedCents * 2, 10_000) : Math.max(current * 1.5, key.accruedCents * 1.25);
    const prefill = lowerTo !== null ? (lowerTo / 100).toFixed(2) : (Math.ceil(raised / 100 / 10) * 10).toFixed(2);
    const input = h("input", {
      type: "number",
      id: "cap-dollars",
      min: "0",
      max: String(MAX_CAP_CENTS / 100),
      step: "0.01",
      inputmode: "decimal",
      required: true,
      value: prefill,
      "aria-describedby": "cap-help",
    });
    const problem = h("p", { className: "field-error", role: "alert" });
    const confirm = h("button", { type: "submit", className: "button" }, "Save cap");
    const cancel = h("button", { type: "button", className: "button button-quiet" }, "Cancel");
    cancel.addEventListener("click", () => this.el.close());
    const form = h(
      "form",
      { className: "cap-form", novalidate: true },
      h(
        "dl",
        { className: "cap-facts" },
        h("div", null, h("dt", null, "Accrued this month"), h("dd", { title: exactMoney(key.accruedCents) }, money(key.accruedCents))),
        h("div", null, h("dt", null, "Current cap"), h("dd", null, current === null ? "None" : money(current))),
        h("div", null, h("dt", null, "Used"), h("dd", null, key.percentUsed === null ? "—" : percent(key.percentUsed))),
      ),
      h("label", { for: "cap-dollars" }, "New monthly cap (USD)"),
      h("div", { className: "money-input" }, h("span", { "aria-hidden": "true" }, "$"), input),
      h(
        "p",
        { className: "hint", id: "cap-help" },
        lowering ? "A cap at what the key has spent stops it spending more this month: a loop is refused from its next request. " : "",
        `Between $0.00 and ${money(MAX_CAP_CENTS)}. Applies to this calendar month (UTC) and the months after. Requests that would pass the cap are refused with spend_cap_exceeded.`,
      ),
      problem,
      h("div", { className: "dialog-actions" }, cancel, confirm),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const dollars = Number(input.value);
      // The range in dollars, checked here too: a number the API refuses never leaves the page.
      if (input.value.trim() === "" || !Number.isFinite(dollars) || dollars < 0 || dollars > MAX_CAP_CENTS / 100) {
        problem.textContent = `Enter a monthly cap between $0.00 and ${money(MAX_CAP_CENTS)}.`;
        return;
      }
      const cents = Math.round(dollars * 100);
      // Lowering by surprise (from "Raise cap") asks first; "Lower cap" was asked for.
      if (!lowering && current !== null && cents < current && !window.confirm("This lowers the cap. Requests may start being refused. Continue?")) return;
      confirm.disabled = true;
      problem.textContent = "";
      try {
        await this.mutations.setCap(key.id, cents);
        this.el.close();
        this.onDone();
      } catch (error) {
        problem.textContent = messageOf(error);
        confirm.disabled = false;
      }
    });
    replace(this.body, form);
    if (!this.el.open) this.el.showModal();
    input.focus();
    input.select();
  }
}
