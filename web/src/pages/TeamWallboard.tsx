import { useBoard, useNow } from "../context";
import { formatCount, formatSigned } from "../format";
import { alertLevelsByTile, firingAlertsFor } from "../levels";
import { freshnessOf, useStream } from "../stream";
import { AdvisorGrid } from "../components/AdvisorGrid";
import { AlertsPanel, useAlerts } from "../components/AlertsPanel";
import { BoardHeader } from "../components/BoardHeader";
import { BoardLink, Panel, StreamProblem } from "../components/common";
import { FigureTiles, groupFigures } from "../components/FigureTiles";
import { NoticesBanner, PostNotice } from "../components/Notices";
import { Sparkline } from "../components/Sparkline";
import { AlertTargetKind } from "../gen/vigie/v1/alerts_pb";
import { Window, type TeamUpdate, type TeamView } from "../gen/vigie/v1/supervision_pb";

/** The wallboard of one team: WatchTeam over today, its alerts and its notices. */
export function TeamWallboard({ team }: { team: string }) {
  const board = useBoard();
  const { labels, language } = board;
  const now = useNow();
  const stream = useStream(`team|${board.site}|${team}|${board.accessEpoch}`, {
    open: (signal) =>
      board.api.supervision.watchTeam({ site: board.site, team, window: Window.WINDOW_TODAY }, { signal }),
    reduce: (previous: TeamView | undefined, update: TeamUpdate) => update.view ?? previous,
    onAccessProblem: board.onAccessProblem,
    hasToken: board.hasToken,
  });
  const alertsStream = useAlerts();
  const view = stream.value;
  const teamData = view?.team;
  const { stale } = freshnessOf(stream, now);

  const queues = teamData?.queues ?? [];
  const members = teamData?.members ?? [];
  const alerts = firingAlertsFor(alertsStream.value, { teams: [team], queues, advisors: members });
  // Only the alerts about the team itself and its queues colour the team's tiles; an advisor's
  // alert (a long pause) is listed but says nothing about the team's figures.
  const tileAlerts = alertLevelsByTile(alerts.filter((alert) => alert.target?.kind !== AlertTargetKind.ADVISOR));

  const targets = view?.queueTargets ?? [];
  const serviceLevelTarget = targets.length === 0 ? undefined : Math.max(...targets.map((target) => target.slTarget));
  const ahtTargets = targets.flatMap((target) => (target.ahtTarget === undefined ? [] : [target.ahtTarget]));
  // The staffing estimate uses the mean of the queues' AHT targets for a team; so does the tile.
  const ahtTarget =
    ahtTargets.length === 0 ? undefined : ahtTargets.reduce((sum, value) => sum + value, 0) / ahtTargets.length;

  const names = new Map<string, string>();
  for (const advisor of view?.advisors ?? []) if (advisor.name !== undefined) names.set(advisor.advisor, advisor.name);

  const title = teamData?.name ?? team;
  const staffing = teamData?.staffing;
  return (
    <main
      class="board team-board"
      data-testid="team-wallboard"
      data-seq={view?.header?.seq.toString() ?? ""}
      data-site={board.site}
    >
      <BoardHeader kind={labels.team} title={title} header={view?.header} stream={stream}>
        <BoardLink path="/" class="nav-link">
          {labels.siteOverview}
        </BoardLink>
        <PostNotice team={team} />
      </BoardHeader>
      <NoticesBanner team={team} />
      <StreamProblem stream={stream} what={`${labels.team} ${team}`} />
      <div class={`board-body${stale ? " is-stale" : ""}`}>
        <FigureTiles
          figures={groupFigures(teamData?.indicators, { serviceLevel: serviceLevelTarget, aht: ahtTarget }, staffing)}
          receivedAt={stream.receivedAt}
          alertLevels={tileAlerts}
        />
        <div class="board-columns">
          <Panel title={labels.advisors} class="advisors-panel">
            <AdvisorGrid advisors={view?.advisors ?? []} receivedAt={stream.receivedAt} />
          </Panel>
          <aside class="side-column">
            <Panel title={labels.slTrend}>
              <Sparkline intervals={teamData?.serviceLevelByInterval ?? []} target={serviceLevelTarget} />
            </Panel>
            {staffing?.requiredAdvisors !== undefined && (
              <Panel title={labels.staffing}>
                <p class={`staffing-line${(staffing.staffingGap ?? 0) < 0 ? " is-short" : ""}`} data-testid="staffing">
                  {labels.need(
                    formatCount(staffing.requiredAdvisors, language),
                    formatCount(staffing.staffedAdvisors, language),
                  )}
                  {staffing.staffingGap !== undefined && (
                    <span class="staffing-gap"> ({labels.gapShort(formatSigned(staffing.staffingGap, language))})</span>
                  )}
                </p>
              </Panel>
            )}
            <AlertsPanel alerts={alerts} stream={alertsStream} names={names} />
          </aside>
        </div>
      </div>
    </main>
  );
}
