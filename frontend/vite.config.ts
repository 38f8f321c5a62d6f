import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the API to a server started with `make run` (same origin in production:
// `easel serve` serves the built files from dist/).
const api = process.env.EASEL_API ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: Object.fromEntries(
      ["/v1", "/openapi.json", "/healthz", "/readyz"].map((path) => [path, { target: api, changeOrigin: false }]),
    ),
  },
  // The 3D viewer (model-viewer with three.js) is its own chunk, loaded only when a model is shown.
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false, chunkSizeWarningLimit: 1500 },
  test: { include: ["src/**/*.test.ts"], environment: "node" },
});
