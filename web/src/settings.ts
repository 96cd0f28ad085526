// What the page takes from its address: where the API is, which site, which language.

import { detectLanguage, type Language } from "./i18n";

export interface Settings {
  /** Base URL of the gRPC-Web API, without trailing slash. */
  apiBaseUrl: string;
  /** The site asked for with `?site=`, if any. */
  requestedSite: string | undefined;
  language: Language;
}

export function readSettings(location: Location, navigatorLanguages: readonly string[]): Settings {
  const params = new URLSearchParams(location.search);
  return {
    apiBaseUrl: apiBaseUrl(params.get("api"), location.origin),
    requestedSite: nonEmpty(params.get("site")),
    language: detectLanguage(params.get("lang"), navigatorLanguages),
  };
}

/**
 * The page's own origin (the service serves the page and gRPC-Web on one port), or `?api=` for
 * development against the gRPC port directly. A malformed `?api=` falls back to the origin
 * rather than leaving the wall blank.
 */
function apiBaseUrl(requested: string | null, origin: string): string {
  if (requested) {
    try {
      const url = new URL(requested);
      if (url.protocol === "http:" || url.protocol === "https:") {
        return url.href.replace(/\/+$/, "");
      }
    } catch {
      // fall through to the origin
    }
  }
  return origin;
}

function nonEmpty(value: string | null): string | undefined {
  return value === null || value.trim() === "" ? undefined : value.trim();
}

/**
 * The query parameters worth keeping when moving between boards, so that a link from the site
 * overview to a team keeps the same API, site and language.
 */
export function carriedQuery(search: string): string {
  const params = new URLSearchParams(search);
  const kept = new URLSearchParams();
  for (const name of ["api", "site", "lang"]) {
    const value = params.get(name);
    if (value !== null && value !== "") kept.set(name, value);
  }
  const query = kept.toString();
  return query === "" ? "" : `?${query}`;
}
