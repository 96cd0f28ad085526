// Small helpers over directory trees, shared by the build scripts.
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";

/** Every file under `root`, as `/`-separated paths relative to it, sorted by byte order. */
export function listFiles(root) {
  const found = [];
  const walk = (dir, prefix) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const relative = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
      if (entry.isDirectory()) walk(join(dir, entry.name), relative);
      else if (entry.isFile()) found.push(relative);
    }
  };
  if (existsSync(root)) walk(root, "");
  return found.sort(compareBytes);
}

/** Byte-order comparison of two strings' UTF-8 encodings (not UTF-16 code units). */
export function compareBytes(a, b) {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** Lists how two trees differ: files only in one of them, or with different bytes. */
export function treeDifferences(left, right) {
  const leftFiles = listFiles(left);
  const rightFiles = listFiles(right);
  const rightSet = new Set(rightFiles);
  const leftSet = new Set(leftFiles);
  const differences = [];
  for (const file of leftFiles) {
    if (!rightSet.has(file)) differences.push(`only in ${left}: ${file}`);
    else if (!readFileSync(join(left, file)).equals(readFileSync(join(right, file))))
      differences.push(`differs: ${file}`);
  }
  for (const file of rightFiles) {
    if (!leftSet.has(file)) differences.push(`only in ${right}: ${file}`);
  }
  return differences;
}

export function sameTrees(left, right) {
  return treeDifferences(left, right).length === 0;
}
