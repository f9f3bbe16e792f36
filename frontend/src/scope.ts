// From the view in the URL to the variables of each document.

import type { UsageFilter } from "./generated/graphql";
import { type Period, type ViewState, addDays, invoiceMonth, periodOf, today } from "./state";

export interface Scope {
  state: ViewState;
  period: Period;
  accountId: string | null;
  /** The platform-wide view of a platform admin: no account, every account's usage. */
  admin: boolean;
  /** month, or from/to: what every period-bound document is asked for */
  periodVars: { month: string | null; from: string | null; to: string | null };
  /** the anomalies panel: the period, reaching back a week when this month has only just begun */
  anomalyVars: { month: string | null; from: string | null; to: string | null };
  /** the first day the anomalies panel covers when it reaches back before the period, else null */
  anomaliesReachBackTo: string | null;
  /** compute and voice: the period and account only (provider and key filters are LLM-only) */
  base: UsageFilter;
  /** the LLM axis, once per chosen provider: the API takes one provider per filter */
  llm: UsageFilter[];
  invoiceMonth: string;
}

/** How many days back the panel of the current month always looks for anomalies. */
export const RECENT_ANOMALY_DAYS = 7;

export function scopeOf(state: ViewState, now: Date = new Date()): Scope {
  const period = periodOf(state, now);
  const periodVars = period.month
    ? { month: period.month, from: null, to: null }
    : { month: null, from: period.from, to: period.to };
  // A leak found late on the 31st matters as much on the 1st: early in the current month the
  // panel also covers the last days of the month before, so an anomaly never vanishes at midnight.
  const recentStart = addDays(today(now), -(RECENT_ANOMALY_DAYS - 1));
  const reachBack = period.month === today(now).slice(0, 7) && state.preset !== "last-month" && recentStart < period.from;
  const anomalyVars = reachBack ? { month: null, from: recentStart, to: period.to } : periodVars;
  const base: UsageFilter = {
    ...withoutNulls(periodVars),
    ...(state.accountId ? { accountId: state.accountId } : {}),
    ...(state.admin ? { admin: true } : {}),
  };
  const keyed: UsageFilter = state.keyIds.length ? { ...base, keyIds: state.keyIds } : base;
  const llm = state.providers.length ? state.providers.map((provider) => ({ ...keyed, provider })) : [keyed];
  return {
    state,
    period,
    accountId: state.accountId,
    admin: state.admin,
    periodVars,
    anomalyVars,
    anomaliesReachBackTo: reachBack ? recentStart : null,
    base,
    llm,
    invoiceMonth: invoiceMonth(period),
  };
}

function withoutNulls<T extends Record<string, unknown>>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null)) as Partial<T>;
}
