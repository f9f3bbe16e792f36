// Money arrives as continuous cents (floats with micro-cent precision, CONTRACTS.md §1.1). Sums are done
// in integer micro-cents so that adding many small floats never drifts from the API's totals.

export const MICROS_PER_CENT = 1_000_000;

export function toMicros(cents: number): number {
  return Math.round(cents * MICROS_PER_CENT);
}

export function sumCents(values: Iterable<number>): number {
  let micros = 0;
  for (const value of values) micros += toMicros(value);
  return micros / MICROS_PER_CENT;
}

const dollars = new Intl.NumberFormat("en-US", {
  style: "currency",
  currency: "USD",
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});
const compactDollars = new Intl.NumberFormat("en-US", {
  style: "currency",
  currency: "USD",
  notation: "compact",
  maximumFractionDigits: 1,
});
const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

/** $1,234.56 — rounded half-up to whole cents like the invoice; an amount that rounds to
 * nothing but is not nothing reads "<$0.01" (never "$0.00" beside a non-zero share). */
export function money(cents: number): string {
  const rounded = roundHalfUpCents(cents);
  if (rounded === 0 && toMicros(cents) !== 0) return cents > 0 ? "<$0.01" : ">-$0.01";
  return dollars.format(rounded / 100);
}

export function roundHalfUpCents(cents: number): number {
  const micros = toMicros(cents);
  const sign = micros < 0 ? -1 : 1;
  const abs = Math.abs(micros);
  return sign * Math.floor((abs + MICROS_PER_CENT / 2) / MICROS_PER_CENT);
}

/** The exact amount in dollars, down to the micro-cent ($0.00031415), never rounded. */
export function exactMoney(cents: number): string {
  const micros = toMicros(cents);
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(micros);
  // 1 dollar = 100 cents = 1e8 micro-cents.
  const whole = Math.floor(abs / 1e8);
  let fraction = String(abs % 1e8).padStart(8, "0").replace(/0+$/, "");
  if (fraction.length < 2) fraction = fraction.padEnd(2, "0");
  return `${sign}$${integer.format(whole)}.${fraction}`;
}

export function compactMoney(cents: number): string {
  return Math.abs(cents) < 100_000 ? money(cents) : compactDollars.format(cents / 100);
}

export function count(n: number): string {
  return integer.format(n);
}

export function hours(n: number): string {
  return `${oneDecimal.format(n)} h`;
}

export function percent(n: number): string {
  return `${oneDecimal.format(n)}%`;
}

// Dates are UTC calendar days (CONTRACTS.md §1.2), written YYYY-MM-DD by the API.

const monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const longMonths = [
  "January", "February", "March", "April", "May", "June",
  "July", "August", "September", "October", "November", "December",
];
const weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

export function parseDay(day: string): Date {
  return new Date(`${day}T00:00:00Z`);
}

/** "3 Nov" */
export function shortDay(day: string): string {
  const d = parseDay(day);
  return `${d.getUTCDate()} ${monthNames[d.getUTCMonth()]}`;
}

/** "Tue 3 Nov 2026" */
export function longDay(day: string): string {
  const d = parseDay(day);
  return `${weekdays[d.getUTCDay()]} ${d.getUTCDate()} ${monthNames[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
}

/** "November 2026" for "2026-11" */
export function monthName(month: string): string {
  const [year, m] = month.split("-");
  return `${longMonths[Number(m) - 1]} ${year}`;
}

/** "14:03:12" (UTC) */
export function clockTime(at: Date): string {
  return at.toISOString().slice(11, 19);
}

/** "2026-11-03 14:03:12" (UTC) from an ISO timestamp */
export function timestamp(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace("T", " ").slice(0, 19);
}

export function ago(seconds: number): string {
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  return `${Math.floor(minutes / 60)} h ago`;
}
