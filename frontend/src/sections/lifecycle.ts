// The one lifecycle of a part of the page that loads: skeleton, fetch, drawn (ready or empty),
// or an error with "Try again"; an aborted load leaves the page to the load that replaced it.

import { replace } from "../dom";
import type { Scope } from "../scope";
import { empty, errorBox, isAbort, loading, setState } from "../ui";

export interface LoadSteps<T> {
  /** Carries data-state and aria-busy. */
  el: HTMLElement;
  /** Replaced by the error box; `placeholder` and `show` draw into it. */
  body: HTMLElement;
  signal: AbortSignal;
  /** Puts up the skeleton; null keeps what is on screen (a quiet refresh over drawn data). */
  placeholder: (() => void) | null;
  fetch(signal: AbortSignal): Promise<T>;
  /** Draws the answer and sets data-state to ready or empty. */
  show(value: T): void;
  /** Forgets what was shown, before the error box goes up. */
  failed?(): void;
  /** What "Try again" runs. */
  retry(): void;
}

/**
 * Runs one load. Resolves once drawn, or quietly when aborted; when it fails, draws the error
 * with its "Try again" button and then rejects with the error, so that the caller can tell the
 * page is stale.
 */
export async function runLoad<T>(steps: LoadSteps<T>): Promise<void> {
  const { el, body } = steps;
  if (steps.placeholder) {
    setState(el, "loading");
    steps.placeholder();
  }
  try {
    steps.show(await steps.fetch(steps.signal));
  } catch (error) {
    if (isAbort(error)) return;
    steps.failed?.();
    setState(el, "error");
    replace(body, errorBox(error, () => steps.retry()));
    throw error;
  }
}

export interface Skeleton {
  /** Read out while loading ("Loading voice"). */
  label: string;
  lines: number;
  tall?: boolean;
}

/**
 * A dashboard section that loads its own data for a scope: `load` is what the dashboard calls on
 * every (re)load; subclasses say how to fetch and how to draw.
 */
export abstract class LoadedSection<T> {
  readonly el: HTMLElement;
  protected readonly body: HTMLElement;
  /** The last answer drawn; null before the first and after a failure. */
  data: T | null = null;
  onData: (data: T | null) => void = () => {};
  /**
   * Set for a part that belongs to one account (keys, invoice, anomalies): in the platform-wide
   * view it says this instead of loading.
   */
  accountOnly: { title: string; text: string } | null = null;

  constructor(frame: { el: HTMLElement; body: HTMLElement }, private readonly skeleton: Skeleton) {
    this.el = frame.el;
    this.body = frame.body;
  }

  /** A quiet refresh keeps the drawn figures on screen until the new ones arrive. */
  load(scope: Scope, signal: AbortSignal, quiet: boolean): Promise<void> {
    if (scope.admin && this.accountOnly) {
      this.data = null;
      this.onData(null);
      setState(this.el, "empty");
      replace(this.body, empty(this.accountOnly.title, this.accountOnly.text));
      return Promise.resolve();
    }
    const { label, lines, tall = false } = this.skeleton;
    return runLoad({
      el: this.el,
      body: this.body,
      signal,
      placeholder: quiet && this.data ? null : () => loading(this.body, label, lines, tall),
      fetch: (signal) => this.fetch(scope, signal),
      show: (data) => {
        this.data = data;
        this.render(data, scope);
        this.onData(data);
      },
      failed: () => {
        this.data = null;
        this.onData(null);
        this.cleared();
      },
      retry: () => void this.load(scope, new AbortController().signal, false),
    });
  }

  protected abstract fetch(scope: Scope, signal: AbortSignal): Promise<T>;

  /** Draws `data` and sets data-state to ready or empty. */
  protected abstract render(data: T, scope: Scope): void;

  /** After a failure, before the error box: take down what outlives the body (a chart). */
  protected cleared(): void {}
}
