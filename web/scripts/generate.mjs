// Generates src/gen/ from ../proto with buf and protoc-gen-es.
//
// The generated files are kept in the repository so that a build needs only `npm ci` and
// `npm run build`. Generation runs into a temporary directory first and src/gen/ is replaced
// only when the output differs, so an unchanged schema leaves the tree (and file times) alone.
// With `--check`, nothing is written: the exit code says whether src/gen/ is up to date.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, cpSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { listFiles, sameTrees } from "./tree.mjs";

const webDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const protoDir = join(webDir, "..", "proto");
const genDir = join(webDir, "src", "gen");
const checkOnly = process.argv.includes("--check");

const scratch = mkdtempSync(join(tmpdir(), "vigie-web-gen-"));
try {
  const buf = join(webDir, "node_modules", ".bin", "buf");
  // protoc-gen-es is found on PATH, as npm scripts put node_modules/.bin there.
  const path = `${join(webDir, "node_modules", ".bin")}:${process.env.PATH ?? ""}`;
  execFileSync(buf, ["generate", protoDir, "--template", join(webDir, "buf.gen.yaml"), "-o", scratch], {
    cwd: webDir,
    stdio: "inherit",
    env: { ...process.env, PATH: path },
  });
  const fresh = join(scratch, "gen");
  if (existsSync(genDir) && sameTrees(fresh, genDir)) {
    console.log(`src/gen is up to date (${listFiles(fresh).length} files)`);
  } else if (checkOnly) {
    console.error("src/gen differs from what ../proto generates: run `npm run generate`");
    process.exitCode = 1;
  } else {
    rmSync(genDir, { recursive: true, force: true });
    cpSync(fresh, genDir, { recursive: true });
    console.log(`src/gen regenerated (${listFiles(genDir).length} files)`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
