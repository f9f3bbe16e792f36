// What the page shows, kept in the URL so a view can be shared and the back button works:
//   ?range=this-month|last-month|last-7-days|last-30-days  or  ?from=YYYY-MM-DD&to=YYYY-MM-DD
//   &provider=openai&provider=anthropic  &key=<uuid>&key=<uuid>  &account=<uuid>
//   &log=YYYY-MM-DD[&model=NAME][&logProvider=NAME][&logKey=<uuid>][&logAgent=<uuid>]
//   (the open drill-down)

export type Preset = "this-month" | "last-month" | "last-7-days" | "last-30-days";
export const PRESETS: { value: Preset; label: string }[] = [
  { value: "this-month", label: "This month" },
  { value: "last-month", label: "Last month" },
  { value: "last-7-days", label: "Last 7 days" },
  { value: "last-30-days", label: "Last 30 days" },
];

export interface LogSelection {
  date: string;
  model: string | null;
  provider: string | null;
  keyId: string | null;
  /** One agent's requests (an anomaly's "find the agent"); absent: every agent's. */
  agentId?: string | null;
}

export interface ViewState {
  preset: Preset | null; // null: a custom from/to range
  from: string | null;
  to: string | null;
  providers: string[];
  keyIds: string[];
  accountId: string | null;
  log: LogSelection | null;
}

/** The period a view covers: a month (`month` set) or an inclusive range of days. */
export interface Period {
  month: string | null;
  from: string;
  to: string;
  days: string[];
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;
const MAX_DAYS = 366;

export function isDay(value: string | null): value is string {
  if (value === null || !DAY.test(value)) return false;
  const d = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(value);
}

export function today(now: Date = new Date()): string {
  return now.toISOString().slice(0, 10);
}

export function addDays(day: string, n: number): string {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

function monthBounds(year: number, monthIndex: number): { month: string; from: string; to: string } {
  const first = new Date(Date.UTC(year, monthIndex, 1));
  const last = new Date(Date.UTC(year, monthIndex + 1, 0));
  return {
    month: first.toISOString().slice(0, 7),
    from: first.toISOString().slice(0, 10),
    to: last.toISOString().slice(0, 10),
  };
}

export function daysBetween(from: string, to: string): string[] {
  const days: string[] = [];
  for (let day = from; day <= to && days.length <= MAX_DAYS; day = addDays(day, 1)) days.push(day);
  return days;
}

export function periodOf(state: ViewState, now: Date = new Date()): Period {
  const end = today(now);
  let bounds: { month: string | null; from: string; to: string };
  switch (state.preset) {
    case "this-month":
      bounds = monthBounds(now.getUTCFullYear(), now.getUTCMonth());
      break;
    case "last-month":
      bounds = monthBounds(now.getUTCFullYear(), now.getUTCMonth() - 1);
      break;
    case "last-7-days":
      bounds = { month: null, from: addDays(end, -6), to: end };
      break;
    case "last-30-days":
      bounds = { month: null, from: addDays(end, -29), to: end };
      break;
    default:
      bounds = { month: null, from: state.from ?? end, to: state.to ?? end };
  }
  return { ...bounds, days: daysBetween(bounds.from, bounds.to) };
}

/** The invoice shown beside a period: the month its last day falls in. */
export function invoiceMonth(period: Period): string {
  return period.month ?? period.to.slice(0, 7);
}

export function defaultState(): ViewState {
  return {
    preset: "this-month",
    from: null,
    to: null,
    providers: [],
    keyIds: [],
    accountId: null,
    log: null,
  };
}

function unique(values: string[]): string[] {
  return [...new Set(values.filter((v) => v.trim() !== ""))];
}

export function fromSearch(search: string): ViewState {
  const params = new URLSearchParams(search);
  const state = defaultState();
  const range = params.get("range");
  const from = params.get("from");
  const to = params.get("to");
  if (isDay(from) && isDay(to) && from <= to && daysBetween(from, to).length <= MAX_DAYS) {
    state.preset = null;
    state.from = from;
    state.to = to;
  } else if (PRESETS.some((p) => p.value === range)) {
    state.preset = range as Preset;
  }
  state.providers = unique(params.getAll("provider"));
  state.keyIds = unique(params.getAll("key"));
  state.accountId = params.get("account") || null;
  const log = params.get("log");
  if (isDay(log)) {
    state.log = {
      date: log,
      model: params.get("model") || null,
      provider: params.get("logProvider") || null,
      keyId: params.get("logKey") || null,
      agentId: params.get("logAgent") || null,
    };
  }
  return state;
}

export function toSearch(state: ViewState): string {
  const params = new URLSearchParams();
  if (state.preset === null && state.from && state.to) {
    params.set("from", state.from);
    params.set("to", state.to);
  } else if (state.preset && state.preset !== "this-month") {
    params.set("range", state.preset);
  }
  for (const provider of state.providers) params.append("provider", provider);
  for (const key of state.keyIds) params.append("key", key);
  if (state.accountId) params.set("account", state.accountId);
  if (state.log) {
    params.set("log", state.log.date);
    if (state.log.model) params.set("model", state.log.model);
    if (state.log.provider) params.set("logProvider", state.log.provider);
    if (state.log.keyId) params.set("logKey", state.log.keyId);
    if (state.log.agentId) params.set("logAgent", state.log.agentId);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

export function sameView(a: ViewState, b: ViewState): boolean {
  return toSearch({ ...a, log: null }) === toSearch({ ...b, log: null });
}
