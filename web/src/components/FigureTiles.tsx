import type { ComponentChildren } from "preact";
import { useBoard, useNow } from "../context";
import { formatCount, formatDuration, formatPercent } from "../format";
import { levelAgainstTarget, type Severity, type TileKind } from "../levels";
import { elapsedSince } from "../stream";
import { rawValue, Tile } from "./Tile";
import type { AdvisorsByState, GroupIndicators, QueueView, StaffingGap } from "../gen/vigie/v1/supervision_pb";

/** The figures of the seven tiles, whatever the board (team, queue, whole site). */
export interface Figures {
  serviceLevel: number | undefined;
  serviceLevelTarget: number | undefined;
  inQueue: bigint | undefined;
  longestWait: number | undefined;
  available: number | undefined;
  staffed: number | undefined;
  aht: number | undefined;
  ahtTarget: number | undefined;
  abandonRate: number | undefined;
  handled: bigint | undefined;
}

export function groupFigures(
  indicators: GroupIndicators | undefined,
  targets: { serviceLevel: number | undefined; aht: number | undefined },
  staffing: StaffingGap | undefined,
): Figures {
  const advisors = indicators?.advisors;
  return {
    serviceLevel: indicators?.flow?.serviceLevel,
    serviceLevelTarget: targets.serviceLevel,
    inQueue: indicators?.live?.inQueue,
    longestWait: indicators?.live?.longestWait,
    available: advisors?.available,
    staffed: staffing?.staffedAdvisors ?? (advisors === undefined ? undefined : staffedCount(advisors)),
    aht: indicators?.advisorsIndicators?.handling?.aht,
    ahtTarget: targets.aht,
    abandonRate: indicators?.flow?.abandonRate,
    handled: indicators?.advisorsIndicators?.handling?.handled,
  };
}

export function queueFigures(view: QueueView | undefined): Figures {
  const indicators = view?.indicators;
  return {
    serviceLevel: indicators?.flow?.serviceLevel,
    serviceLevelTarget: view?.slTarget,
    inQueue: indicators?.live?.inQueue,
    longestWait: indicators?.live?.longestWait,
    available: view?.advisors?.available,
    staffed:
      view?.staffing?.staffedAdvisors ?? (view?.advisors === undefined ? undefined : staffedCount(view.advisors)),
    aht: indicators?.handling?.aht,
    ahtTarget: view?.ahtTarget,
    abandonRate: indicators?.flow?.abandonRate,
    handled: indicators?.handling?.handled,
  };
}

/** Advisors who can take or are taking contacts: as the API counts `staffed_advisors`. */
export function staffedCount(advisors: AdvisorsByState): number {
  return advisors.available + advisors.offered + advisors.talking + advisors.onHold + advisors.acw;
}

/** The longest wait moved on by the time since the message, while someone still waits. */
export function liveLongestWait(
  longestWait: number | undefined,
  inQueue: bigint | undefined,
  receivedAt: number | undefined,
  now: number,
): number | undefined {
  if (longestWait === undefined) return undefined;
  if (inQueue === undefined || inQueue === 0n) return longestWait;
  return longestWait + elapsedSince(receivedAt, now);
}

interface FigureTilesProps {
  figures: Figures;
  receivedAt: number | undefined;
  alertLevels: ReadonlyMap<TileKind, Severity>;
  /** Drawn inside the service-level tile (the trend line). */
  serviceLevelExtra?: ComponentChildren;
}

export function FigureTiles({ figures, receivedAt, alertLevels, serviceLevelExtra }: FigureTilesProps) {
  const { labels, language } = useBoard();
  const now = useNow();
  const f = figures;
  const alertOnly = (kind: TileKind) => alertLevels.get(kind) ?? "none";
  const staffedText = f.staffed === undefined ? undefined : labels.ofStaffed(formatCount(f.staffed, language));
  return (
    <div class="tiles">
      <Tile
        kind="service-level"
        label={labels.serviceLevel}
        display={formatPercent(f.serviceLevel, language)}
        raw={rawValue(f.serviceLevel)}
        level={levelAgainstTarget(f.serviceLevel, f.serviceLevelTarget, alertLevels.get("service-level"), true)}
        detail={
          f.serviceLevelTarget === undefined
            ? undefined
            : labels.targetOf(formatPercent(f.serviceLevelTarget, language))
        }
      >
        {serviceLevelExtra}
      </Tile>
      <Tile
        kind="in-queue"
        label={labels.inQueue}
        display={formatCount(f.inQueue, language)}
        raw={rawValue(f.inQueue)}
        level={alertOnly("in-queue")}
      />
      <Tile
        kind="longest-wait"
        label={labels.longestWait}
        display={formatDuration(liveLongestWait(f.longestWait, f.inQueue, receivedAt, now))}
        raw={rawValue(f.longestWait)}
        level={alertOnly("longest-wait")}
      />
      <Tile
        kind="available"
        label={labels.availableAdvisors}
        display={formatCount(f.available, language)}
        raw={rawValue(f.available)}
        level={alertOnly("available")}
        detail={staffedText}
      />
      <Tile
        kind="aht"
        label={labels.aht}
        display={formatDuration(f.aht)}
        raw={rawValue(f.aht)}
        level={levelAgainstTarget(f.aht, f.ahtTarget, alertLevels.get("aht"), false)}
        detail={f.ahtTarget === undefined ? undefined : labels.targetOf(formatDuration(f.ahtTarget))}
      />
      <Tile
        kind="abandon-rate"
        label={labels.abandonRate}
        display={formatPercent(f.abandonRate, language, "nearest")}
        raw={rawValue(f.abandonRate)}
        level={alertOnly("abandon-rate")}
      />
      <Tile
        kind="handled"
        label={labels.handled}
        display={formatCount(f.handled, language)}
        raw={rawValue(f.handled)}
        level="none"
      />
    </div>
  );
}
