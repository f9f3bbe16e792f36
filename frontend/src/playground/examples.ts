// The documents the playground opens with: the dashboard's own queries (the files the page
// sends, as they are) and the query that answers what GET /api/usage answers.

import type { ComponentProps } from "react";
import type { GraphiQL } from "graphiql";
import anomalies from "../graphql/Anomalies.graphql?raw";
import compute from "../graphql/ComputeChart.graphql?raw";
import invoice from "../graphql/InvoicePreview.graphql?raw";
import keyCards from "../graphql/KeyCards.graphql?raw";
import llm from "../graphql/LlmDailyChart.graphql?raw";
import voice from "../graphql/VoiceChart.graphql?raw";
import restUsage from "../../playground-examples/RestUsage.graphql?raw";

function vars(value: Record<string, unknown>): string {
  return JSON.stringify(value, null, 2);
}

/** `month` is this UTC month ("2026-12"): the variables name it so that a run shows figures. */
export function exampleTabs(month: string): NonNullable<ComponentProps<typeof GraphiQL>["defaultTabs"]> {
  const filter = { filter: { month } };
  return [
    { query: restUsage, variables: vars(filter) },
    { query: keyCards, variables: vars({ accountId: null, ...filter }) },
    { query: llm, variables: vars(filter) },
    { query: compute, variables: vars(filter) },
    { query: voice, variables: vars(filter) },
    { query: anomalies, variables: vars({ accountId: null, month }) },
    { query: invoice, variables: vars({ accountId: null, month }) },
  ];
}
