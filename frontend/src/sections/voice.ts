// Voice: characters spoken per day, a segment per voice model.

import { execute } from "../api";
import { StackedDailyChart, colorFor, type Series } from "../charts";
import { h, replace } from "../dom";
import { count, money, toMicros } from "../format";
import { VoiceChartDocument, type VoiceChartQuery } from "../generated/graphql";
import type { Scope } from "../scope";
import { empty, errorBox, isAbort, loading, section, setState } from "../ui";

export type VoiceData = VoiceChartQuery["usage"]["voice"] & { days: string[] };

export interface VoiceSeries {
  voiceModel: string;
  micros: number[];
  characters: number[];
  totalMicros: number;
}

export function voiceSeries(data: VoiceData): VoiceSeries[] {
  const index = new Map(data.days.map((d, i) => [d, i]));
  const byModel = new Map<string, VoiceSeries>();
  for (const day of data.daily) {
    const i = index.get(day.date);
    if (i === undefined) continue;
    for (const m of day.models) {
      let s = byModel.get(m.voiceModel);
      if (!s) {
        s = { voiceModel: m.voiceModel, micros: data.days.map(() => 0), characters: data.days.map(() => 0), totalMicros: 0 };
        byModel.set(m.voiceModel, s);
      }
      const micros = toMicros(m.totalCents);
      s.micros[i] = (s.micros[i] ?? 0) + micros;
      s.characters[i] = (s.characters[i] ?? 0) + m.characters;
      s.totalMicros += micros;
    }
  }
  return [...byModel.values()].sort((a, b) => b.totalMicros - a.totalMicros || a.voiceModel.localeCompare(b.voiceModel));
}

export class VoiceSection {
  readonly el: HTMLElement;
  private readonly body: HTMLElement;
  private readonly canvas = h("canvas", { role: "img", "aria-label": "Daily voice spend" });
  private readonly chartBox = h("div", { className: "chart-box" }, this.canvas);
  private readonly chart = new StackedDailyChart("voice", this.canvas, null);
  data: VoiceData | null = null;
  onData: (data: VoiceData | null) => void = () => {};

  constructor() {
    const frame = section("voice", "Voice", "Text-to-speech characters per UTC day, by voice model.");
    this.el = frame.el;
    this.body = frame.body;
  }

  async load(scope: Scope, signal: AbortSignal, quiet: boolean): Promise<void> {
    if (!quiet || !this.data) {
      setState(this.el, "loading");
      loading(this.body, "Loading voice", 4, true);
    }
    try {
      const answer = await execute(VoiceChartDocument, { filter: scope.base }, signal);
      this.data = { ...answer.usage.voice, days: scope.period.days };
      this.render(this.data);
      this.onData(this.data);
    } catch (error) {
      if (isAbort(error)) return;
      this.data = null;
      this.onData(null);
      this.chart.destroy();
      setState(this.el, "error");
      replace(this.body, errorBox(error, () => void this.load(scope, new AbortController().signal, false)));
      throw error;
    }
  }

  private render(data: VoiceData): void {
    if (data.totalCharacters === 0 && toMicros(data.totalCents) === 0) {
      this.chart.destroy();
      setState(this.el, "empty");
      replace(this.body, empty("No voice in this period", "Speech generated through /v1/audio/speech appears here."));
      return;
    }
    setState(this.el, "ready");
    const models = voiceSeries(data);
    const series: Series[] = models.map((m, i) => ({
      label: m.voiceModel,
      color: colorFor(i + 3),
      values: m.micros.map((v) => v / 1e6),
      detail: (day) => `${count(m.characters[day] ?? 0)} characters`,
    }));
    this.canvas.setAttribute("aria-label", `Daily voice spend: ${money(data.totalCents)} for ${count(data.totalCharacters)} characters.`);
    replace(
      this.body,
      h("p", { className: "headline" }, h("strong", { className: "figure", "data-cents": data.totalCents }, money(data.totalCents)), ` for ${count(data.totalCharacters)} characters`),
      this.chartBox,
    );
    this.chart.update(data.days, series);
  }
}
