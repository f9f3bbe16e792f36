// Voice: characters spoken per day, a segment per voice model.

import { execute } from "../api";
import { StackedDailyChart, colorFor, type Series } from "../charts";
import { h, replace } from "../dom";
import { count, money, toMicros } from "../format";
import { VoiceChartDocument, type VoiceChartQuery } from "../generated/graphql";
import type { Scope } from "../scope";
import { empty, section, setState } from "../ui";
import { LoadedSection } from "./lifecycle";

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

export class VoiceSection extends LoadedSection<VoiceData> {
  private readonly canvas = h("canvas", { role: "img", "aria-label": "Daily voice spend" });
  private readonly chartBox = h("div", { className: "chart-box" }, this.canvas);
  private readonly chart = new StackedDailyChart("voice", this.canvas, null);

  constructor() {
    super(section("voice", "Voice", "Text-to-speech characters per UTC day, by voice model."), { label: "Loading voice", lines: 4, tall: true });
  }

  protected override async fetch(scope: Scope, signal: AbortSignal): Promise<VoiceData> {
    const answer = await execute(VoiceChartDocument, { filter: scope.base }, signal);
    return { ...answer.usage.voice, days: scope.period.days };
  }

  protected override cleared(): void {
    this.chart.destroy();
  }

  protected override render(data: VoiceData): void {
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
