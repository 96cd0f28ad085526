// Fails when the committed build in ../crates/vigie-web/assets is not what the sources build.
//
// It checks that src/gen/ matches ../proto, type-checks, builds into a temporary directory,
// stamps it and compares the two trees byte for byte. Nothing in the repository is written.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { treeDifferences } from "./tree.mjs";

const webDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const committed = join(webDir, "..", "crates", "vigie-web", "assets");
const bin = (name) => join(webDir, "node_modules", ".bin", name);
const run = (command, args) => execFileSync(command, args, { cwd: webDir, stdio: "inherit" });

const scratch = mkdtempSync(join(tmpdir(), "vigie-web-check-"));
let failed = false;
try {
  run(process.execPath, [join(webDir, "scripts", "generate.mjs"), "--check"]);
  run(bin("tsc"), ["--noEmit", "-p", "tsconfig.json"]);
  const built = join(scratch, "assets");
  run(bin("vite"), ["build", "--outDir", built, "--emptyOutDir", "--logLevel", "warn"]);
  run(process.execPath, [join(webDir, "scripts", "stamp.mjs"), built]);
  const differences = treeDifferences(built, committed);
  if (differences.length > 0) {
    failed = true;
    console.error("crates/vigie-web/assets is out of date; run `npm run build` in web/:");
    for (const line of differences) console.error(`  ${line}`);
  } else {
    console.log("crates/vigie-web/assets is up to date");
  }
} catch (error) {
  failed = true;
  console.error(error instanceof Error ? error.message : error);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
