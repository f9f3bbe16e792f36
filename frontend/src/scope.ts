// From the view in the URL to the variables of each document.

import type { UsageFilter } from "./generated/graphql";
import { type Period, type ViewState, periodOf, invoiceMonth } from "./state";

export interface Scope {
  state: ViewState;
  period: Period;
  accountId: string | null;
  /** month, or from/to: what every period-bound document is asked for */
  periodVars: { month: string | null; from: string | null; to: string | null };
  /** compute and voice: the period and account only (provider and key filters are LLM-only) */
  base: UsageFilter;
  /** the LLM axis, once per chosen provider: the API takes one provider per filter */
  llm: UsageFilter[];
  invoiceMonth: string;
}

export function scopeOf(state: ViewState, now: Date = new Date()): Scope {
  const period = periodOf(state, now);
  const periodVars = period.month
    ? { month: period.month, from: null, to: null }
    : { month: null, from: period.from, to: period.to };
  const base: UsageFilter = { ...withoutNulls(periodVars), ...(state.accountId ? { accountId: state.accountId } : {}) };
  const keyed: UsageFilter = state.keyIds.length ? { ...base, keyIds: state.keyIds } : base;
  const llm = state.providers.length ? state.providers.map((provider) => ({ ...keyed, provider })) : [keyed];
  return { state, period, accountId: state.accountId, periodVars, base, llm, invoiceMonth: invoiceMonth(period) };
}

function withoutNulls<T extends Record<string, unknown>>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null)) as Partial<T>;
}
