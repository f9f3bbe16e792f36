import { resolve } from "node:path";
import { defineConfig } from "vite";

// Served by the backend under /dashboard/ (crabglamp/dashboard.py); `npm run dev` proxies the
// API to a `crabglamp serve` on :8000 so the cookie and /graphql are same-origin. Two pages:
// the dashboard (index.html) and the GraphQL playground (playground.html, served at /graphql).
export default defineConfig({
  base: "/dashboard/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    assetsDir: "assets",
    // The playground carries Monaco (GraphiQL's editor), a few MB that only /graphql loads.
    chunkSizeWarningLimit: 4096,
    rollupOptions: {
      input: {
        dashboard: resolve(import.meta.dirname, "index.html"),
        playground: resolve(import.meta.dirname, "playground.html"),
      },
      // GraphiQL's dependencies mark modules "use client" (for React server components): a
      // bundle for the browser has nothing to keep of it.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
  worker: { format: "es" },
  server: {
    proxy: {
      "/graphql": "http://127.0.0.1:8000",
      "/api": "http://127.0.0.1:8000",
      "/dev": "http://127.0.0.1:8000",
      "/docs": "http://127.0.0.1:8000",
    },
  },
});
