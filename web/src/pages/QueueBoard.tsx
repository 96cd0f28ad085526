import { useBoard, useNow } from "../context";
import { formatCount, formatDuration, formatPercent, formatSigned } from "../format";
import { alertLevelsByTile, firingAlertsFor } from "../levels";
import { channelName, stateOrder } from "../states";
import { freshnessOf, useStream } from "../stream";
import { AlertsPanel, useAlerts } from "../components/AlertsPanel";
import { BoardHeader } from "../components/BoardHeader";
import { BoardLink, Panel, StreamProblem } from "../components/common";
import { FigureTiles, liveLongestWait, queueFigures } from "../components/FigureTiles";
import { Sparkline } from "../components/Sparkline";
import { Window, type AdvisorsByState, type QueueUpdate, type QueueView } from "../gen/vigie/v1/supervision_pb";

/** The board of one queue: WatchQueue over today, per channel, staffing and its alerts. */
export function QueueBoard({ queue }: { queue: string }) {
  const board = useBoard();
  const { labels, language } = board;
  const now = useNow();
  const stream = useStream(`queue|${board.site}|${queue}|${board.accessEpoch}`, {
    open: (signal) =>
      board.api.supervision.watchQueue({ site: board.site, queue, window: Window.WINDOW_TODAY }, { signal }),
    reduce: (previous: QueueView | undefined, update: QueueUpdate) => update.view ?? previous,
    onAccessProblem: board.onAccessProblem,
    hasToken: board.hasToken,
  });
  const alertsStream = useAlerts();
  const view = stream.value;
  const { stale } = freshnessOf(stream, now);
  const alerts = firingAlertsFor(alertsStream.value, { queues: [queue] });
  const staffing = view?.staffing;

  return (
    <main
      class="board queue-board"
      data-testid="queue-board"
      data-seq={view?.header?.seq.toString() ?? ""}
      data-site={board.site}
    >
      <BoardHeader kind={labels.queue} title={view?.name ?? queue} header={view?.header} stream={stream}>
        <BoardLink path="/" class="nav-link">
          {labels.siteOverview}
        </BoardLink>
      </BoardHeader>
      <StreamProblem stream={stream} what={`${labels.queue} ${queue}`} />
      <div class={`board-body${stale ? " is-stale" : ""}`}>
        <FigureTiles
          figures={queueFigures(view)}
          receivedAt={stream.receivedAt}
          alertLevels={alertLevelsByTile(alerts)}
        />
        <div class="board-columns">
          <div class="main-column">
            <Panel title={labels.advisorsByState}>
              <StateCounts advisors={view?.advisors} />
            </Panel>
            <Panel title={labels.channels}>
              <table class="figures-table channels-table">
                <thead>
                  <tr>
                    <th scope="col">{labels.channel}</th>
                    <th scope="col">{labels.serviceLevel}</th>
                    <th scope="col">{labels.inQueue}</th>
                    <th scope="col">{labels.longestWait}</th>
                    <th scope="col">{labels.offered}</th>
                    <th scope="col">{labels.answered}</th>
                    <th scope="col">{labels.abandonRate}</th>
                    <th scope="col">{labels.aht}</th>
                  </tr>
                </thead>
                <tbody>
                  {(view?.channels ?? []).map((row) => {
                    const name = channelName(row.channel);
                    const indicators = row.indicators;
                    return (
                      <tr key={name} data-testid={`channel-${name}`}>
                        <th scope="row">{labels.channelNames[name]}</th>
                        <td>{formatPercent(indicators?.flow?.serviceLevel, language)}</td>
                        <td>{formatCount(indicators?.live?.inQueue, language)}</td>
                        <td>
                          {formatDuration(
                            liveLongestWait(
                              indicators?.live?.longestWait,
                              indicators?.live?.inQueue,
                              stream.receivedAt,
                              now,
                            ),
                          )}
                        </td>
                        <td>{formatCount(indicators?.flow?.offered, language)}</td>
                        <td>{formatCount(indicators?.flow?.answered, language)}</td>
                        <td>{formatPercent(indicators?.flow?.abandonRate, language, "nearest")}</td>
                        <td>{formatDuration(indicators?.handling?.aht)}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </Panel>
          </div>
          <aside class="side-column">
            <Panel title={labels.slTrend}>
              <Sparkline intervals={view?.serviceLevelByInterval ?? []} target={view?.slTarget} />
            </Panel>
            <Panel title={labels.staffing}>
              <p class={`staffing-line${(staffing?.staffingGap ?? 0) < 0 ? " is-short" : ""}`} data-testid="staffing">
                {staffing?.requiredAdvisors !== undefined
                  ? labels.need(
                      formatCount(staffing.requiredAdvisors, language),
                      formatCount(staffing.staffedAdvisors, language),
                    )
                  : staffing === undefined
                    ? "\u00a0"
                    : `${labels.staffingUnknown}${staffing.undefinedReason === "" ? "" : `: ${staffing.undefinedReason}`}`}
                {staffing?.staffingGap !== undefined && (
                  <span class="staffing-gap"> ({labels.gapShort(formatSigned(staffing.staffingGap, language))})</span>
                )}
              </p>
            </Panel>
            <AlertsPanel alerts={alerts} stream={alertsStream} />
          </aside>
        </div>
      </div>
    </main>
  );
}

/** Advisors of the teams serving the queue, counted by state, as a row of coloured counts. */
function StateCounts({ advisors }: { advisors: AdvisorsByState | undefined }) {
  const { labels, language } = useBoard();
  const counts: Record<(typeof stateOrder)[number], number | undefined> = {
    available: advisors?.available,
    offered: advisors?.offered,
    talking: advisors?.talking,
    on_hold: advisors?.onHold,
    acw: advisors?.acw,
    pause: advisors?.pause,
    logged_out: advisors?.loggedOut,
  };
  return (
    <ul class="state-counts">
      {stateOrder.map((state) => (
        <li
          key={state}
          class={`state-count state-${state}`}
          data-testid={`state-count-${state}`}
          data-value={String(counts[state] ?? "")}
        >
          <span class="state-count-value">{formatCount(counts[state], language)}</span>
          <span class="state-count-label">
            <span class="state-dot" aria-hidden="true" />
            {labels.states[state]}
          </span>
        </li>
      ))}
    </ul>
  );
}
