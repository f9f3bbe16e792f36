import { defineConfig } from "vite";

// Served by the backend under /dashboard/ (crabglamp/dashboard.py); `npm run dev` proxies the
// API to a `crabglamp serve` on :8000 so the cookie and /graphql are same-origin.
export default defineConfig({
  base: "/dashboard/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    assetsDir: "assets",
  },
  server: {
    proxy: {
      "/graphql": "http://127.0.0.1:8000",
      "/api": "http://127.0.0.1:8000",
      "/dev": "http://127.0.0.1:8000",
      "/docs": "http://127.0.0.1:8000",
    },
  },
});
