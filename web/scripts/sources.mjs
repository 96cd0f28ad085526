// The fingerprint of the wallboard's sources, written next to the build as SOURCES.sha256.
//
// A Rust test of crates/vigie-web recomputes it the same way to tell whether the embedded build
// is up to date, so the recipe is fixed: the repository-relative paths (with `/`) of every
// file under web/src/ and web/public/, plus web/index.html, web/package.json,
// web/package-lock.json, web/vite.config.ts, web/tsconfig.json and proto/vigie/v1/*.proto,
// sorted by byte order; for each, the path's UTF-8 bytes, a 0x00 byte, the file's bytes and a
// 0x00 byte go into one SHA-256.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { listFiles, compareBytes } from "./tree.mjs";

const singleFiles = [
  "web/index.html",
  "web/package.json",
  "web/package-lock.json",
  "web/vite.config.ts",
  "web/tsconfig.json",
];

/** The repository-relative paths that make up the fingerprint, in hashing order. */
export function sourcePaths(repoRoot) {
  const paths = [];
  for (const tree of ["web/src", "web/public"]) {
    for (const file of listFiles(join(repoRoot, tree))) paths.push(`${tree}/${file}`);
  }
  for (const file of singleFiles) {
    if (!existsSync(join(repoRoot, file))) throw new Error(`missing source file ${file}`);
    paths.push(file);
  }
  const protoDir = join(repoRoot, "proto", "vigie", "v1");
  for (const entry of readdirSync(protoDir, { withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith(".proto")) paths.push(`proto/vigie/v1/${entry.name}`);
  }
  return paths.sort(compareBytes);
}

/** The lowercase hex SHA-256 of the sources. */
export function sourcesDigest(repoRoot) {
  const hash = createHash("sha256");
  const separator = Buffer.from([0]);
  for (const path of sourcePaths(repoRoot)) {
    hash.update(Buffer.from(path, "utf8"));
    hash.update(separator);
    hash.update(readFileSync(join(repoRoot, path)));
    hash.update(separator);
  }
  return hash.digest("hex");
}
