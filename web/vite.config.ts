import { defineConfig } from "vite";

// Node's `process`, without pulling @types/node in for one line.
declare const process: { env: Record<string, string | undefined> };

// The gRPC-Web services the page calls. The dev server forwards them to a local `vigie serve`
// (`VIGIE_API`, default its gRPC port) so that the page also works from its own origin during
// development, as it does when the service serves it.
const grpcServices = ["vigie.v1.Supervision", "vigie.v1.Alerts", "vigie.v1.Notices"];
const devApi = process.env.VIGIE_API ?? "http://127.0.0.1:50051";

export default defineConfig({
  base: "/",
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    // The Rust crate vigie-web embeds this directory; `npm run check` rebuilds into a temporary
    // directory (with --outDir) and compares.
    outDir: "../crates/vigie-web/assets",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
    modulePreload: { polyfill: false },
  },
  server: {
    host: "127.0.0.1",
    port: 5173,
    proxy: Object.fromEntries(grpcServices.map((service) => [`/${service}/`, { target: devApi, changeOrigin: true }])),
  },
  preview: {
    host: "127.0.0.1",
    port: 4173,
  },
});
