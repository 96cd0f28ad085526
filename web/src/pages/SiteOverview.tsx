import { useBoard, useNow } from "../context";
import { formatCount, formatDuration, formatPercent, formatSigned } from "../format";
import { alertLevelsByTile, firingAlertsFor, levelAgainstTarget, type AlertBook } from "../levels";
import { freshnessOf, useStream } from "../stream";
import { AlertsPanel, useAlerts } from "../components/AlertsPanel";
import { BoardHeader } from "../components/BoardHeader";
import { BoardLink, Panel, StreamProblem } from "../components/common";
import { FigureTiles, groupFigures, liveLongestWait, staffedCount } from "../components/FigureTiles";
import { rawValue } from "../components/Tile";
import { AlertTargetKind } from "../gen/vigie/v1/alerts_pb";
import {
  Window,
  type QueueView,
  type SiteUpdate,
  type SiteView,
  type StaffingGap,
  type Team,
} from "../gen/vigie/v1/supervision_pb";

/** The whole site: totals, every team and every queue, and the count of firing alerts. */
export function SiteOverview() {
  const board = useBoard();
  const { labels } = board;
  const now = useNow();
  const stream = useStream(`site|${board.site}|${board.accessEpoch}`, {
    open: (signal) => board.api.supervision.watchSite({ site: board.site, window: Window.WINDOW_TODAY }, { signal }),
    reduce: (previous: SiteView | undefined, update: SiteUpdate) => update.view ?? previous,
    onAccessProblem: board.onAccessProblem,
    hasToken: board.hasToken,
  });
  const alertsStream = useAlerts();
  const view = stream.value;
  const { stale } = freshnessOf(stream, now);
  const firing = firingAlertsFor(alertsStream.value, "all");
  const siteAlertLevels = alertLevelsByTile(firing.filter((alert) => alert.target?.kind === AlertTargetKind.SITE));

  const names = new Map<string, string>();
  for (const advisor of view?.advisors ?? []) if (advisor.name !== undefined) names.set(advisor.advisor, advisor.name);
  for (const queue of view?.queues ?? []) if (queue.name !== undefined) names.set(queue.queue, queue.name);
  for (const team of view?.teams ?? []) if (team.name !== undefined) names.set(team.team, team.name);

  const totals = view?.totals;
  return (
    <main
      class="board site-board"
      data-testid="site-overview"
      data-seq={view?.header?.seq.toString() ?? ""}
      data-site={board.site}
    >
      <BoardHeader
        kind={labels.site}
        title={view?.name ?? board.siteName ?? board.site}
        header={view?.header}
        stream={stream}
        showSite={false}
      >
        <span
          class={`count-pill${firing.length > 0 ? " has-alerts" : ""}`}
          data-testid="firing-alert-count"
          data-value={String(firing.length)}
        >
          {labels.firingCount(firing.length)}
        </span>
      </BoardHeader>
      <StreamProblem stream={stream} what={`${labels.site} ${board.site}`} />
      <div class={`board-body${stale ? " is-stale" : ""}`}>
        <FigureTiles
          figures={groupFigures(totals, { serviceLevel: undefined, aht: undefined }, undefined)}
          receivedAt={stream.receivedAt}
          alertLevels={siteAlertLevels}
        />
        <div class="board-columns">
          <div class="main-column">
            <Panel title={labels.teams}>
              <TeamsTable
                teams={view?.teams ?? []}
                queues={view?.queues ?? []}
                receivedAt={stream.receivedAt}
                alerts={alertsStream.value}
              />
            </Panel>
            <Panel title={labels.queues}>
              <QueuesTable queues={view?.queues ?? []} receivedAt={stream.receivedAt} alerts={alertsStream.value} />
            </Panel>
          </div>
          <aside class="side-column">
            <AlertsPanel alerts={firing} stream={alertsStream} names={names} />
          </aside>
        </div>
      </div>
    </main>
  );
}

function TableHead({ first }: { first: string }) {
  const { labels } = useBoard();
  return (
    <thead>
      <tr>
        <th scope="col">{first}</th>
        <th scope="col">{labels.serviceLevel}</th>
        <th scope="col">{labels.inQueue}</th>
        <th scope="col">{labels.longestWait}</th>
        <th scope="col">{labels.availableOfStaffed}</th>
        <th scope="col">{labels.abandonRate}</th>
        <th scope="col">{labels.handledShort}</th>
        <th scope="col">{labels.staffing}</th>
      </tr>
    </thead>
  );
}

interface TeamsTableProps {
  teams: readonly Team[];
  queues: readonly QueueView[];
  receivedAt: number | undefined;
  alerts: AlertBook | undefined;
}

function TeamsTable({ teams, queues, receivedAt, alerts }: TeamsTableProps) {
  const { labels, language } = useBoard();
  const now = useNow();
  const targetOf = new Map(queues.map((queue) => [queue.queue, queue.slTarget]));
  return (
    <table class="figures-table overview-table">
      <TableHead first={labels.team} />
      <tbody>
        {teams.map((team) => {
          const indicators = team.indicators;
          const targets = team.queues.flatMap((queue) => {
            const target = targetOf.get(queue);
            return target === undefined ? [] : [target];
          });
          const target = targets.length === 0 ? undefined : Math.max(...targets);
          const teamAlerts = firingAlertsFor(alerts, { teams: [team.team], queues: team.queues });
          const level = levelAgainstTarget(
            indicators?.flow?.serviceLevel,
            target,
            alertLevelsByTile(teamAlerts).get("service-level"),
            true,
          );
          const staffed =
            team.staffing?.staffedAdvisors ?? (indicators?.advisors ? staffedCount(indicators.advisors) : undefined);
          return (
            <tr
              key={team.team}
              data-testid={`team-row-${team.team}`}
              data-service-level={rawValue(indicators?.flow?.serviceLevel)}
            >
              <th scope="row">
                <BoardLink path={`/team/${encodeURIComponent(team.team)}`}>{team.name ?? team.team}</BoardLink>
              </th>
              <td class={`level-${level}`}>{formatPercent(indicators?.flow?.serviceLevel, language)}</td>
              <td>{formatCount(indicators?.live?.inQueue, language)}</td>
              <td>
                {formatDuration(
                  liveLongestWait(indicators?.live?.longestWait, indicators?.live?.inQueue, receivedAt, now),
                )}
              </td>
              <td>
                {formatCount(indicators?.advisors?.available, language)} / {formatCount(staffed, language)}
              </td>
              <td>{formatPercent(indicators?.flow?.abandonRate, language, "nearest")}</td>
              <td>{formatCount(indicators?.advisorsIndicators?.handling?.handled, language)}</td>
              <td class={(team.staffing?.staffingGap ?? 0) < 0 ? "is-short" : ""}>
                <StaffingCell staffing={team.staffing} />
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function QueuesTable({
  queues,
  receivedAt,
  alerts,
}: {
  queues: readonly QueueView[];
  receivedAt: number | undefined;
  alerts: AlertBook | undefined;
}) {
  const { labels, language } = useBoard();
  const now = useNow();
  return (
    <table class="figures-table overview-table">
      <TableHead first={labels.queue} />
      <tbody>
        {queues.map((queue) => {
          const indicators = queue.indicators;
          const queueAlerts = firingAlertsFor(alerts, { queues: [queue.queue] });
          const level = levelAgainstTarget(
            indicators?.flow?.serviceLevel,
            queue.slTarget,
            alertLevelsByTile(queueAlerts).get("service-level"),
            true,
          );
          const staffed =
            queue.staffing?.staffedAdvisors ?? (queue.advisors ? staffedCount(queue.advisors) : undefined);
          return (
            <tr
              key={queue.queue}
              data-testid={`queue-row-${queue.queue}`}
              data-service-level={rawValue(indicators?.flow?.serviceLevel)}
            >
              <th scope="row">
                <BoardLink path={`/queue/${encodeURIComponent(queue.queue)}`}>{queue.name ?? queue.queue}</BoardLink>
              </th>
              <td class={`level-${level}`}>
                {formatPercent(indicators?.flow?.serviceLevel, language)}
                <span class="cell-target"> / {formatPercent(queue.slTarget, language)}</span>
              </td>
              <td>{formatCount(indicators?.live?.inQueue, language)}</td>
              <td>
                {formatDuration(
                  liveLongestWait(indicators?.live?.longestWait, indicators?.live?.inQueue, receivedAt, now),
                )}
              </td>
              <td>
                {formatCount(queue.advisors?.available, language)} / {formatCount(staffed, language)}
              </td>
              <td>{formatPercent(indicators?.flow?.abandonRate, language, "nearest")}</td>
              <td>{formatCount(indicators?.handling?.handled, language)}</td>
              <td class={(queue.staffing?.staffingGap ?? 0) < 0 ? "is-short" : ""}>
                <StaffingCell staffing={queue.staffing} />
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** "need 14, have 11 (−3)", or a dash when the requirement is undefined. */
function StaffingCell({ staffing }: { staffing: StaffingGap | undefined }) {
  const { labels, language } = useBoard();
  if (staffing?.requiredAdvisors === undefined) return <span title={staffing?.undefinedReason}>–</span>;
  return (
    <span>
      {labels.need(formatCount(staffing.requiredAdvisors, language), formatCount(staffing.staffedAdvisors, language))}
      {staffing.staffingGap !== undefined &&
        staffing.staffingGap !== 0 &&
        ` (${formatSigned(staffing.staffingGap, language)})`}
    </span>
  );
}
