import type { CodegenConfig } from "@graphql-codegen/cli";

// Types for every document in src/graphql/, from the API's exported SDL at the repository root.
// `npm run codegen` (or `just frontend`) regenerates src/generated/graphql.ts.
const config: CodegenConfig = {
  schema: process.env.CRABGLAMP_SCHEMA ?? "../schema.graphql",
  documents: "src/graphql/**/*.graphql",
  generates: {
    "src/generated/graphql.ts": {
      plugins: ["typescript-operations", "typed-document-node"],
      config: {
        // Documents as plain strings: the app posts them as they are, no GraphQL runtime shipped.
        documentMode: "string",
        enumsAsTypes: true,
        useTypeImports: true,
        avoidOptionals: { field: true, inputValue: false, object: true },
        scalars: { Date: "string", DateTime: "string", ID: "string", BigInt: "number" },
        strictScalars: false,
        defaultScalarType: "unknown",
      },
    },
  },
};

export default config;
