import { timestampMs } from "@bufbuild/protobuf/wkt";
import { useBoard, useNow } from "../context";
import { formatClock, formatCount, formatDuration, formatPercent, NO_VALUE } from "../format";
import { reduceAlerts, severityOf, type AlertBook } from "../levels";
import { elapsedSince, useStream, type StreamState } from "../stream";
import { AlertTargetKind, AlertUnit, type Alert } from "../gen/vigie/v1/alerts_pb";
import type { Language, Labels } from "../i18n";

/** Follows the site's alerts (in the caller's scope). */
export function useAlerts(): StreamState<AlertBook> {
  const board = useBoard();
  return useStream(`alerts|${board.site}|${board.accessEpoch}`, {
    open: (signal) => board.api.alerts.watchAlerts({ site: board.site }, { signal }),
    reduce: reduceAlerts,
    onAccessProblem: board.onAccessProblem,
    hasToken: board.hasToken,
  });
}

interface AlertsPanelProps {
  alerts: readonly Alert[];
  stream: StreamState<AlertBook>;
  /** Display names of advisors and queues, by id, where the board knows them. */
  names?: ReadonlyMap<string, string>;
}

/** The firing alerts of a board: severity, what, value against threshold, since when. */
export function AlertsPanel({ alerts, stream, names }: AlertsPanelProps) {
  const { labels, language, timeZone } = useBoard();
  const now = useNow();
  const unavailable = stream.value === undefined && stream.error !== undefined;
  // How long each alert has held: the engine's clock of the last message, moved on locally.
  const engineNowMs =
    stream.value?.asOfMs === undefined ? undefined : stream.value.asOfMs + elapsedSince(stream.receivedAt, now) * 1000;
  return (
    <section class="panel alerts-panel" aria-label={labels.firingAlerts}>
      <h2 class="panel-title">
        {labels.firingAlerts}
        <span class={`count-pill${alerts.length > 0 ? " has-alerts" : ""}`} data-testid="alerts-count">
          {alerts.length}
        </span>
      </h2>
      {unavailable && <p class="panel-note">{labels.alertsUnavailable}</p>}
      {!unavailable && alerts.length === 0 && <p class="panel-note">{labels.noFiringAlert}</p>}
      <ul class="alert-list">
        {alerts.map((alert) => {
          const severity = severityOf(alert) ?? "warning";
          const sinceMs = alert.since === undefined ? undefined : timestampMs(alert.since);
          const heldFor =
            sinceMs === undefined || engineNowMs === undefined ? undefined : (engineNowMs - sinceMs) / 1000;
          return (
            <li
              key={alert.id}
              class={`alert severity-${severity}`}
              data-testid={`alert-${alert.id}`}
              data-severity={severity}
            >
              <span class="alert-severity">{labels.severity[severity]}</span>
              <span class="alert-rule">{alert.ruleName || alert.rule}</span>
              <span class="alert-detail">
                <span class="alert-target">{targetText(alert, labels, names)}</span>
                <span class="alert-figures">
                  {valueText(alert.value, alert.unit, language)} {alert.comparator === "below" ? "<" : ">"}{" "}
                  {valueText(alert.threshold, alert.unit, language)}
                </span>
              </span>
              <span class="alert-since">
                {labels.since} {formatClock(sinceMs, language, timeZone)}
                {heldFor !== undefined && heldFor >= 0 && <span class="alert-held"> · {formatDuration(heldFor)}</span>}
              </span>
            </li>
          );
        })}
      </ul>
    </section>
  );
}

function targetText(alert: Alert, labels: Labels, names: ReadonlyMap<string, string> | undefined): string {
  const target = alert.target;
  if (target === undefined) return "";
  const kind =
    target.kind === AlertTargetKind.QUEUE
      ? labels.target_kind.queue
      : target.kind === AlertTargetKind.TEAM
        ? labels.target_kind.team
        : target.kind === AlertTargetKind.ADVISOR
          ? labels.target_kind.advisor
          : labels.target_kind.site;
  return `${kind} ${names?.get(target.id) ?? target.id}`;
}

function valueText(value: number | undefined, unit: AlertUnit, language: Language): string {
  if (value === undefined) return NO_VALUE;
  switch (unit) {
    case AlertUnit.SECONDS:
      return formatDuration(value);
    case AlertUnit.FRACTION:
      // A gap to target can be negative: a signed percentage reads right.
      return formatPercent(value, language, "nearest");
    case AlertUnit.COUNT:
      return formatCount(value, language);
    default:
      return String(value);
  }
}
