// What the page shows, kept in the URL so a view can be shared and the back button works:
//   ?range=this-month|last-month|last-7-days|last-30-days  or  ?month=YYYY-MM  (as the API)
//   or  ?from=YYYY-MM-DD&to=YYYY-MM-DD
//   &provider=openai&provider=anthropic  &key=<uuid>&key=<uuid>  &account=<uuid>  &admin=1
//   &log=YYYY-MM-DD[&model=NAME][&logProvider=NAME][&logKey=<uuid>][&logAgent=<uuid>]
//   (the open drill-down)
// A parameter the page cannot use is not silently replaced: `problems` says what was wrong.

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
  preset: Preset | null; // null: a month (`month`) or a custom from/to range
  /** A month named in the URL (`month=YYYY-MM`), as GET /api/usage takes it. */
  month: string | null;
  from: string | null;
  to: string | null;
  providers: string[];
  keyIds: string[];
  accountId: string | null;
  /** The platform-wide view (platform admins only), as GET /api/usage?admin=1. */
  admin: boolean;
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
const MONTH = /^(\d{4})-(\d{2})$/;
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
export const MAX_DAYS = 366;
// The API's bounds (CONTRACTS.md §1.2).
const FIRST_DAY = "1970-01-01";
const LAST_DAY = "9999-12-30";

export function isMonth(value: string | null): value is string {
  const found = value === null ? null : MONTH.exec(value);
  if (!found) return false;
  const month = Number(found[2]);
  return month >= 1 && month <= 12 && `${value}-01` >= FIRST_DAY && `${value}-01` <= LAST_DAY;
}

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
  if (state.preset === null && state.month) {
    const [year, month] = state.month.split("-").map(Number);
    bounds = monthBounds(year ?? 1970, (month ?? 1) - 1);
    return { ...bounds, days: daysBetween(bounds.from, bounds.to) };
  }
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
    month: null,
    from: null,
    to: null,
    providers: [],
    keyIds: [],
    accountId: null,
    admin: false,
    log: null,
  };
}

function unique(values: string[]): string[] {
  return [...new Set(values.filter((v) => v.trim() !== ""))];
}

/** The view an address names, and what in it the page could not use (one line each). */
export function parseSearch(search: string): { state: ViewState; problems: string[] } {
  const params = new URLSearchParams(search);
  const state = defaultState();
  const problems: string[] = [];
  const range = params.get("range") || null;
  const month = params.get("month") || null;
  const from = params.get("from") || null;
  const to = params.get("to") || null;
  const presets = PRESETS.map((p) => p.value).join(", ");
  if (month !== null && (from !== null || to !== null)) {
    problems.push("month and from/to cannot be combined: choose a month or a range");
  } else if (month !== null) {
    if (isMonth(month)) {
      state.preset = null;
      state.month = month;
    } else {
      problems.push(`month must be YYYY-MM (a month 01 to 12), got '${month}'`);
    }
  } else if (from !== null || to !== null) {
    if (from === null || to === null) problems.push("from and to go together: give both days of the range");
    else if (!isDay(from)) problems.push(`from must be a day YYYY-MM-DD, got '${from}'`);
    else if (!isDay(to)) problems.push(`to must be a day YYYY-MM-DD, got '${to}'`);
    else if (from > to) problems.push(`from (${from}) is after to (${to}): a range runs forwards`);
    else if (from < FIRST_DAY || to > LAST_DAY) problems.push(`a range lies between ${FIRST_DAY} and ${LAST_DAY}`);
    else if (daysBetween(from, to).length > MAX_DAYS)
      problems.push(`${from} to ${to} is longer than ${MAX_DAYS} days, the longest range`);
    else {
      state.preset = null;
      state.from = from;
      state.to = to;
    }
  }
  if (range !== null) {
    if (!PRESETS.some((p) => p.value === range)) problems.push(`range must be one of ${presets}; got '${range}'`);
    else if (state.preset === "this-month" && problems.length === 0) state.preset = range as Preset;
  }
  state.providers = unique(params.getAll("provider"));
  const keys = unique(params.getAll("key"));
  for (const key of keys.filter((k) => !UUID.test(k))) problems.push(`key must be a key id, got '${key}'`);
  state.keyIds = keys.filter((k) => UUID.test(k));
  // A malformed account goes to the API as it is: the page then says "No such account".
  state.accountId = params.get("account") || null;
  const admin = params.get("admin");
  if (admin !== null && admin !== "") {
    if (["1", "true"].includes(admin)) state.admin = state.accountId === null;
    else if (!["0", "false"].includes(admin)) problems.push(`admin must be 1 or 0, got '${admin}'`);
  }
  const log = params.get("log");
  if (isDay(log)) {
    state.log = {
      date: log,
      model: params.get("model") || null,
      provider: params.get("logProvider") || null,
      keyId: params.get("logKey") || null,
      agentId: params.get("logAgent") || null,
    };
  } else if (log) {
    problems.push(`log must be a day YYYY-MM-DD, got '${log}'`);
  }
  return { state, problems };
}

export function fromSearch(search: string): ViewState {
  return parseSearch(search).state;
}

export function toSearch(state: ViewState): string {
  const params = new URLSearchParams();
  if (state.preset === null && state.month) {
    params.set("month", state.month);
  } else if (state.preset === null && state.from && state.to) {
    params.set("from", state.from);
    params.set("to", state.to);
  } else if (state.preset && state.preset !== "this-month") {
    params.set("range", state.preset);
  }
  for (const provider of state.providers) params.append("provider", provider);
  for (const key of state.keyIds) params.append("key", key);
  if (state.accountId) params.set("account", state.accountId);
  else if (state.admin) params.set("admin", "1");
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
