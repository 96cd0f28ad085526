// How figures are judged on the wall: the colour of a tile from its target and from the alerts
// firing on what it measures, and which alerts concern a board.

import { AlertSeverity, AlertState, AlertTargetKind, type Alert, type AlertsUpdate } from "./gen/vigie/v1/alerts_pb";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { UpdateKind } from "./gen/vigie/v1/supervision_pb";

export type Level = "ok" | "warning" | "critical" | "none";
export type Severity = "warning" | "critical";

export type TileKind = "service-level" | "in-queue" | "longest-wait" | "available" | "aht" | "abandon-rate" | "handled";

/** The tile showing what an alert's metric measures (docs/alerts.md names the metrics). */
const tileOfMetric: Record<string, TileKind> = {
  service_level: "service-level",
  service_level_gap: "service-level",
  in_queue: "in-queue",
  longest_wait: "longest-wait",
  available_advisors: "available",
  aht: "aht",
  aht_over_target: "aht",
  abandon_rate: "abandon-rate",
};

export function severityOf(alert: Alert): Severity | undefined {
  if (alert.state !== AlertState.FIRING) return undefined;
  return alert.severity === AlertSeverity.CRITICAL ? "critical" : "warning";
}

/** The worst severity among firing alerts, per tile. */
export function alertLevelsByTile(alerts: readonly Alert[]): Map<TileKind, Severity> {
  const levels = new Map<TileKind, Severity>();
  for (const alert of alerts) {
    const severity = severityOf(alert);
    const tile = tileOfMetric[alert.metric];
    if (severity === undefined || tile === undefined) continue;
    if (severity === "critical" || levels.get(tile) === undefined) levels.set(tile, severity);
  }
  return levels;
}

/**
 * A figure with a target: a firing alert on it decides (warning amber, critical red);
 * otherwise green when the target is met, amber when not. `higherIsBetter` is true for the
 * service level, false for the handle time.
 */
export function levelAgainstTarget(
  value: number | undefined,
  target: number | undefined,
  alert: Severity | undefined,
  higherIsBetter: boolean,
): Level {
  if (alert !== undefined) return alert;
  if (value === undefined || target === undefined) return "none";
  const met = higherIsBetter ? value >= target : value <= target;
  return met ? "ok" : "warning";
}

/** The alerts of the day, by id, from the messages of WatchAlerts. */
export interface AlertBook {
  alerts: ReadonlyMap<string, Alert>;
  /** The engine's clock when the last message was made, in epoch milliseconds. */
  asOfMs: number | undefined;
}

export function reduceAlerts(previous: AlertBook | undefined, update: AlertsUpdate): AlertBook {
  const asOfMs = update.asOf === undefined ? previous?.asOfMs : timestampMs(update.asOf);
  if (update.kind === UpdateKind.SNAPSHOT || update.kind === UpdateKind.RESYNC || previous === undefined) {
    const alerts = new Map<string, Alert>();
    for (const alert of update.alerts) alerts.set(alert.id, alert);
    applyChanges(alerts, update);
    return { alerts, asOfMs };
  }
  const alerts = new Map(previous.alerts);
  applyChanges(alerts, update);
  return { alerts, asOfMs };
}

function applyChanges(alerts: Map<string, Alert>, update: AlertsUpdate): void {
  for (const change of update.changes) {
    // A change without `current` means the alert left the list (its rule changed).
    if (change.current === undefined) alerts.delete(change.alert);
    else alerts.set(change.alert, change.current);
  }
}

export interface AlertScope {
  teams?: readonly string[];
  queues?: readonly string[];
  advisors?: readonly string[];
  /** Site alerts too (the site overview). */
  site?: boolean;
}

/** The firing alerts about the board's targets, critical first, then the oldest first. */
export function firingAlertsFor(book: AlertBook | undefined, scope: AlertScope | "all"): Alert[] {
  if (book === undefined) return [];
  const teams = scope === "all" ? undefined : new Set(scope.teams ?? []);
  const queues = scope === "all" ? undefined : new Set(scope.queues ?? []);
  const advisors = scope === "all" ? undefined : new Set(scope.advisors ?? []);
  const selected: Alert[] = [];
  for (const alert of book.alerts.values()) {
    if (alert.state !== AlertState.FIRING) continue;
    if (scope !== "all") {
      const target = alert.target;
      if (target === undefined) continue;
      const concerned =
        (target.kind === AlertTargetKind.TEAM && teams!.has(target.id)) ||
        (target.kind === AlertTargetKind.QUEUE && queues!.has(target.id)) ||
        (target.kind === AlertTargetKind.ADVISOR && advisors!.has(target.id)) ||
        (target.kind === AlertTargetKind.SITE && scope.site === true);
      if (!concerned) continue;
    }
    selected.push(alert);
  }
  const weight = (alert: Alert) => (alert.severity === AlertSeverity.CRITICAL ? 0 : 1);
  const sinceOf = (alert: Alert) => Number(alert.since?.seconds ?? 0n);
  return selected.sort(
    (a, b) => weight(a) - weight(b) || sinceOf(a) - sinceOf(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
}
