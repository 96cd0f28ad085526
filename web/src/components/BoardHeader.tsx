import type { ComponentChildren } from "preact";
import { useEffect } from "preact/hooks";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { useBoard, useNow } from "../context";
import { formatAge, formatClock } from "../format";
import { freshnessOf, type StreamState } from "../stream";
import type { ViewHeader } from "../gen/vigie/v1/supervision_pb";

interface BoardHeaderProps {
  /** What the board shows ("Team", "Queue", "Site overview"). */
  kind: string;
  title: string;
  header: ViewHeader | undefined;
  stream: StreamState<unknown>;
  /** Whether to name the site under the title (not when the title is the site). */
  showSite?: boolean;
  /** Links and controls at the end of the title line. */
  children?: ComponentChildren;
}

export function BoardHeader({ kind, title, header, stream, showSite = true, children }: BoardHeaderProps) {
  const { labels, siteName, site } = useBoard();
  useEffect(() => {
    document.title = `${title} · Vigie`;
  }, [title]);
  return (
    <header class="board-header">
      <div class="board-title">
        <span class="board-kind">{kind}</span>
        <h1>{title}</h1>
        <span class="board-site">{showSite ? `${siteName ?? site} · ${labels.today}` : labels.today}</span>
        {children}
      </div>
      <div class="board-status">
        {header !== undefined && !header.complete && <IncompleteBadge reason={header.incompleteReason} />}
        <FreshnessIndicator header={header} stream={stream} />
      </div>
    </header>
  );
}

function IncompleteBadge({ reason }: { reason: string }) {
  const { labels } = useBoard();
  return (
    <span class="badge badge-incomplete" data-testid="incomplete" title={reason}>
      {reason === "" ? labels.incompleteNoReason : labels.incomplete(reason)}
    </span>
  );
}

/**
 * How old the figures are: since the last message, and the instant the view describes; a loud
 * STALE when the stream dropped or fell silent.
 */
export function FreshnessIndicator({
  header,
  stream,
}: {
  header: ViewHeader | undefined;
  stream: StreamState<unknown>;
}) {
  const { labels, language, timeZone } = useBoard();
  const now = useNow();
  const { stale, ageMs } = freshnessOf(stream, now);
  const asOf = header?.asOf === undefined ? undefined : timestampMs(header.asOf);
  let why: string | undefined;
  // The server's words stay available on hover; the wall shows what it does about it.
  const errorDetail = stream.error === undefined ? undefined : errorText(stream.error.code, stream.error.rawMessage);
  if (stale) {
    if (stream.phase === "retrying") {
      const inMs = Math.max(0, (stream.retryAt ?? now) - now);
      why = `${labels.staleWhy.reconnecting} · ${labels.staleWhy.retryIn(formatAge(inMs, language))}`;
    } else if (stream.phase === "connecting") {
      why = labels.staleWhy.connecting;
    } else if (ageMs !== undefined) {
      why = `${labels.staleWhy.silent} ${formatAge(ageMs, language)}`;
    }
  }
  return (
    <div
      class={`freshness${stale ? " is-stale" : ""}`}
      data-testid="freshness"
      data-stale={stale ? "true" : "false"}
      role="status"
    >
      {stale && <span class="stale-flag">{labels.stale}</span>}
      <span class="freshness-age">
        {ageMs === undefined ? labels.waiting : labels.updatedAgo(formatAge(ageMs, language))}
      </span>
      {asOf !== undefined && <span class="freshness-asof">{labels.asOf(formatClock(asOf, language, timeZone))}</span>}
      {why !== undefined && (
        <span class="freshness-why" title={errorDetail}>
          {why}
        </span>
      )}
    </div>
  );
}

function errorText(code: Code, message: string): string {
  const name = Code[code]?.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase() ?? "error";
  return message === "" ? name : `${name}: ${message}`;
}
