import { useBoard, useNow } from "../context";
import { formatDuration } from "../format";
import { stateName } from "../states";
import { elapsedSince } from "../stream";
import type { Advisor } from "../gen/vigie/v1/supervision_pb";

/**
 * One card per member, in the server's order (by id) so that everyone keeps their place on the
 * wall: state in words and colour, pause reason, time in state and the current contact's
 * duration, both ticking between messages.
 */
export function AdvisorGrid({
  advisors,
  receivedAt,
}: {
  advisors: readonly Advisor[];
  receivedAt: number | undefined;
}) {
  const { labels } = useBoard();
  const now = useNow();
  const elapsed = elapsedSince(receivedAt, now);
  return (
    <ul class="advisor-grid" aria-label={labels.advisors}>
      {advisors.map((advisor) => {
        const state = stateName(advisor.state);
        const reason = advisor.reason ?? "";
        const inState = advisor.timeInState === undefined ? undefined : advisor.timeInState + elapsed;
        const contact =
          advisor.currentContactDuration === undefined ? undefined : advisor.currentContactDuration + elapsed;
        return (
          <li
            key={advisor.advisor}
            class={`advisor state-${state}`}
            data-testid={`advisor-${advisor.advisor}`}
            data-state={state}
            data-reason={reason}
          >
            <span class="advisor-name" title={advisor.advisor}>
              {advisor.name ?? advisor.advisor}
            </span>
            <span class="advisor-state">
              <span class="state-dot" aria-hidden="true" />
              {labels.states[state]}
              {reason !== "" && <span class="advisor-reason"> · {reason}</span>}
            </span>
            <span class="advisor-times">
              <span class="advisor-in-state" title={labels.inState}>
                {inState === undefined ? "" : formatDuration(inState)}
              </span>
              {contact !== undefined && (
                <span class="advisor-contact" title={labels.contact}>
                  <span class="contact-icon" aria-hidden="true">
                    ☎
                  </span>{" "}
                  {formatDuration(contact)}
                </span>
              )}
            </span>
          </li>
        );
      })}
    </ul>
  );
}
