// Writes SOURCES.sha256 into a build directory (by default ../crates/vigie-web/assets): the
// fingerprint of the sources the build came from (see sources.mjs), one line.
import { writeFileSync, existsSync } from "node:fs";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { sourcesDigest } from "./sources.mjs";

const webDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = join(webDir, "..");
const outDir = resolve(webDir, process.argv[2] ?? "../crates/vigie-web/assets");

if (!existsSync(join(outDir, "index.html"))) {
  console.error(`${outDir} holds no build (index.html is missing)`);
  process.exit(1);
}
const digest = sourcesDigest(repoRoot);
writeFileSync(join(outDir, "SOURCES.sha256"), `${digest}\n`);
console.log(`SOURCES.sha256 ${digest}`);
