import { useState } from "preact/hooks";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { useBoard } from "../context";
import { formatClock } from "../format";
import { useStream } from "../stream";
import type { Labels } from "../i18n";
import { NoticeLevel, type Notice, type NoticesUpdate } from "../gen/vigie/v1/notices_pb";

/**
 * The supervisor's notices for the team (and the site-wide ones), newest first; an important
 * notice stands out. Nothing shows while there is none, or while the server does not offer
 * notices yet.
 */
export function NoticesBanner({ team }: { team: string }) {
  const board = useBoard();
  const { labels, language, timeZone } = board;
  const stream = useStream(`notices|${board.site}|${team}|${board.accessEpoch}`, {
    open: (signal) => board.api.notices.watchNotices({ site: board.site, team }, { signal }),
    reduce: (_previous: Notice[] | undefined, update: NoticesUpdate) => update.notices,
    onAccessProblem: board.onAccessProblem,
    hasToken: board.hasToken,
  });
  const notices = stream.value ?? [];
  if (notices.length === 0) return null;
  return (
    <section class="notices" aria-label={labels.notices}>
      {notices.map((notice) => {
        const level = notice.level === NoticeLevel.IMPORTANT ? "important" : "info";
        const expires = notice.expiresAt === undefined ? undefined : timestampMs(notice.expiresAt);
        return (
          <article
            key={notice.id}
            class={`notice notice-${level}`}
            data-testid={`notice-${notice.id}`}
            data-level={level}
          >
            <span class="notice-icon" aria-hidden="true">
              {level === "important" ? "!" : "i"}
            </span>
            <p class="notice-text">{notice.text}</p>
            <span class="notice-meta">
              {notice.postedBy !== "" && labels.postedBy(notice.postedBy)}
              {expires !== undefined && ` · ${labels.until(formatClock(expires, language, timeZone, false))}`}
            </span>
          </article>
        );
      })}
    </section>
  );
}

const durations = [
  { seconds: 3600, label: (l: Labels) => l.hours(1) },
  { seconds: 4 * 3600, label: (l: Labels) => l.hours(4) },
  { seconds: 8 * 3600, label: (l: Labels) => l.hours(8) },
  { seconds: 86400, label: (l: Labels) => l.days(1) },
];

/** A supervisor's form to post a notice to the team, folded behind a button. */
export function PostNotice({ team }: { team: string }) {
  const board = useBoard();
  const { labels } = board;
  const [open, setOpen] = useState(false);
  const [text, setText] = useState("");
  const [important, setImportant] = useState(false);
  const [duration, setDuration] = useState(4 * 3600);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | undefined>(undefined);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      await board.api.notices.postNotice({
        site: board.site,
        team,
        text: text.trim(),
        level: important ? NoticeLevel.IMPORTANT : NoticeLevel.INFO,
        duration,
      });
      setText("");
      setImportant(false);
      setOpen(false);
      setMessage({ ok: true, text: labels.posted });
      // The confirmation fades: a wall is not the place for stale acknowledgements.
      setTimeout(() => setMessage((current) => (current?.ok === true ? undefined : current)), 4000);
    } catch (error) {
      const failure = ConnectError.from(error);
      setMessage({
        ok: false,
        text: failure.code === Code.Unimplemented ? labels.noticesUnavailable : failure.rawMessage || labels.error,
      });
    } finally {
      setBusy(false);
    }
  };
  return (
    <span class="post-notice-anchor">
      <button
        type="button"
        class="link-button"
        aria-expanded={open}
        onClick={() => (setOpen(!open), setMessage(undefined))}
      >
        {labels.postNotice}
      </button>
      {!open && message !== undefined && <span class={message.ok ? "form-ok" : "form-error"}>{message.text}</span>}
      {open && (
        <form class="post-notice" data-testid="post-notice-form" onSubmit={submit}>
          <label>
            <span>{labels.noticeText}</span>
            <input
              name="text"
              type="text"
              required
              maxLength={280}
              value={text}
              onInput={(event) => setText((event.target as HTMLInputElement).value)}
            />
          </label>
          <label class="inline">
            <input
              type="checkbox"
              name="important"
              checked={important}
              onChange={(event) => setImportant((event.target as HTMLInputElement).checked)}
            />
            <span>{labels.levelImportant}</span>
          </label>
          <label>
            <span>{labels.noticeDuration}</span>
            <select
              name="duration"
              value={String(duration)}
              onChange={(event) => setDuration(Number((event.target as HTMLSelectElement).value))}
            >
              {durations.map((choice) => (
                <option key={choice.seconds} value={String(choice.seconds)}>
                  {choice.label(labels)}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" disabled={busy || text.trim() === ""}>
            {labels.send}
          </button>
          <button type="button" class="link-button" onClick={() => setOpen(false)}>
            {labels.cancel}
          </button>
          {message !== undefined && <span class={message.ok ? "form-ok" : "form-error"}>{message.text}</span>}
        </form>
      )}
    </span>
  );
}
