// CSV of what the page shows: the same period and filters, amounts exact to the micro-cent.

import type { ComputeData } from "./sections/compute";
import { COMPUTE_SERIES, computeDaily } from "./sections/compute";
import type { KeysData } from "./sections/keys";
import type { LlmData } from "./sections/llm";
import type { VoiceData } from "./sections/voice";
import { voiceSeries } from "./sections/voice";


export interface CsvView {
  llm: LlmData | null;
  compute: ComputeData | null;
  voice: VoiceData | null;
  keys: KeysData | null;
}

export const CSV_HEADER = ["axis", "date", "item", "provider", "cents", "requests", "characters"];

/** Cents as an exact decimal string ("12.345600"), from integer micro-cents. */
export function exactCents(micros: number): string {
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(micros);
  return `${sign}${Math.floor(abs / 1e6)}.${String(abs % 1e6).padStart(6, "0")}`;
}

function field(value: string | number | null): string {
  const text = value === null ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(view: CsvView, period: { from: string; to: string }): string {
  const rows: (string | number | null)[][] = [CSV_HEADER];
  if (view.llm) {
    for (const m of view.llm.models) {
      view.llm.days.forEach((day, i) => {
        const micros = m.micros[i] ?? 0;
        const requests = m.counts[i] ?? 0;
        if (micros !== 0 || requests !== 0) rows.push(["llm", day, m.model, m.provider, exactCents(micros), requests, null]);
      });
    }
  }
  if (view.compute) {
    const daily = computeDaily(view.compute);
    view.compute.days.forEach((day, i) => {
      COMPUTE_SERIES.forEach((s, j) => {
        const micros = daily[i]?.[j] ?? 0;
        if (micros !== 0) rows.push(["compute", day, s.label, null, exactCents(micros), null, null]);
      });
    });
  }
  if (view.voice) {
    for (const m of voiceSeries(view.voice)) {
      view.voice.days.forEach((day, i) => {
        const micros = m.micros[i] ?? 0;
        const characters = m.characters[i] ?? 0;
        if (micros !== 0 || characters !== 0) rows.push(["voice", day, m.voiceModel, null, exactCents(micros), null, characters]);
      });
    }
  }
  if (view.keys) {
    for (const card of view.keys.cards) {
      rows.push(["key", `${period.from}..${period.to}`, card.key.name, card.key.provider, exactCents(card.periodMicros), card.periodRequests, null]);
    }
  }
  return rows.map((row) => row.map(field).join(",")).join("\r\n") + "\r\n";
}

export function download(filename: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

