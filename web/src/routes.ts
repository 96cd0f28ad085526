// The wallboard's addresses: `/` the site, `/team/<id>`, `/queue/<id>`.

export type Route =
  { kind: "site" } | { kind: "team"; team: string } | { kind: "queue"; queue: string } | { kind: "unknown" };

export function parseRoute(pathname: string): Route {
  const parts = pathname.split("/").filter((part) => part !== "");
  if (parts.length === 0) return { kind: "site" };
  if (parts.length === 2 && parts[0] === "team") return { kind: "team", team: decode(parts[1]!) };
  if (parts.length === 2 && parts[0] === "queue") return { kind: "queue", queue: decode(parts[1]!) };
  return { kind: "unknown" };
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
