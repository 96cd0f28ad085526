// Following a server stream for as long as a board shows it: reconnection with capped
// exponential backoff and jitter, and what the board needs to say how fresh its figures are.

import { useEffect, useRef, useState } from "preact/hooks";
import { Code, ConnectError } from "@connectrpc/connect";

export type StreamPhase =
  /** Calling, nothing received on this attempt yet. */
  | "connecting"
  /** At least one message arrived on the current call. */
  | "open"
  /** The call ended; the next attempt starts at `retryAt`. */
  | "retrying"
  /** Given up until the access changes (a token is needed or refused). */
  | "stopped";

export interface StreamState<S> {
  /** What the messages received so far add up to (for views: the latest view). */
  value: S | undefined;
  /** `performance.now()` when the last message arrived. */
  receivedAt: number | undefined;
  phase: StreamPhase;
  /** Why the last call ended, if it failed. */
  error: ConnectError | undefined;
  /** `performance.now()` of the next attempt, while retrying. */
  retryAt: number | undefined;
}

/** Why a stream stopped for good: the page must ask for (another) token. */
export interface AccessProblem {
  kind: "unauthenticated" | "denied";
  message: string;
}

export interface StreamOptions<T, S> {
  /** Starts one call; it must end when `signal` aborts. */
  open: (signal: AbortSignal) => AsyncIterable<T>;
  /** Folds a message into the state (a whole view simply replaces it). */
  reduce: (previous: S | undefined, message: T) => S | undefined;
  /** Told when the server refuses the caller; the stream then stops. */
  onAccessProblem: (problem: AccessProblem) => void;
  /** Whether a token was sent: PERMISSION_DENIED asks for another token only then. */
  hasToken: boolean;
}

/** Backoff of the n-th consecutive failed attempt: 0.5 s doubling up to 30 s, with jitter. */
export function retryDelay(attempt: number, random: () => number = Math.random): number {
  const base = 500;
  const cap = 30_000;
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 16));
  // Jitter in [50%, 100%] of the ceiling: walls restarted together do not reconnect in step.
  return ceiling * (0.5 + random() * 0.5);
}

/**
 * A service the server does not implement yet (a newer API than the server) is asked again
 * only now and then.
 */
const unimplementedRetryMs = 60_000;

/**
 * Follows a stream while the component is mounted and `key` stays the same; a new key (other
 * target, other token) starts over. The state keeps the last value through reconnections, so
 * a board shows its last figures, marked stale, rather than nothing.
 */
export function useStream<T, S>(key: string, options: StreamOptions<T, S>): StreamState<S> {
  const [state, setState] = useState<StreamState<S>>({
    value: undefined,
    receivedAt: undefined,
    phase: "connecting",
    error: undefined,
    retryAt: undefined,
  });
  // The latest options are read through a ref so that a new closure on every render does not
  // restart the stream; only `key` does.
  const optionsRef = useRef(options);
  optionsRef.current = options;
  // A page put in the back-forward cache comes back with its calls closed (see below): it
  // follows its streams again when shown.
  const [shownAgain, setShownAgain] = useState(0);
  useEffect(() => {
    const onShow = (event: PageTransitionEvent) => {
      if (event.persisted) setShownAgain((count) => count + 1);
    };
    window.addEventListener("pageshow", onShow);
    return () => window.removeEventListener("pageshow", onShow);
  }, []);

  useEffect(() => {
    const controller = new AbortController();
    const { signal } = controller;
    // A page left for another releases its calls at once, even when the browser keeps it in
    // its back-forward cache: over HTTP/1.1 a browser opens at most six connections to a
    // server, each open stream holds one, and the next board would wait for them.
    const onHide = () => controller.abort();
    window.addEventListener("pagehide", onHide);
    setState({ value: undefined, receivedAt: undefined, phase: "connecting", error: undefined, retryAt: undefined });

    const follow = async () => {
      let failures = 0;
      while (!signal.aborted) {
        setState((previous) => ({ ...previous, phase: "connecting", retryAt: undefined }));
        let failure: ConnectError | undefined;
        try {
          for await (const message of optionsRef.current.open(signal)) {
            failures = 0;
            const receivedAt = performance.now();
            setState((previous) => ({
              value: optionsRef.current.reduce(previous.value, message),
              receivedAt,
              phase: "open",
              error: undefined,
              retryAt: undefined,
            }));
          }
        } catch (error) {
          if (signal.aborted) return;
          failure = ConnectError.from(error);
        }
        if (signal.aborted) return;

        const { hasToken, onAccessProblem } = optionsRef.current;
        if (failure?.code === Code.Unauthenticated || (failure?.code === Code.PermissionDenied && hasToken)) {
          setState((previous) => ({ ...previous, phase: "stopped", error: failure, retryAt: undefined }));
          onAccessProblem({
            kind: failure.code === Code.Unauthenticated ? "unauthenticated" : "denied",
            message: failure.rawMessage,
          });
          return;
        }
        const delay = failure?.code === Code.Unimplemented ? unimplementedRetryMs : retryDelay(failures);
        failures += 1;
        const retryAt = performance.now() + delay;
        setState((previous) => ({ ...previous, phase: "retrying", error: failure, retryAt }));
        await sleep(delay, signal);
      }
    };
    void follow();
    return () => {
      window.removeEventListener("pagehide", onHide);
      controller.abort();
    };
  }, [key, shownAgain]);

  return state;
}

function sleep(milliseconds: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, milliseconds);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** After this long without a message a board is stale (the server sends one per second). */
export const STALE_AFTER_MS = 5_000;

export interface Freshness {
  stale: boolean;
  /** Milliseconds since the last message, if any arrived. */
  ageMs: number | undefined;
}

export function freshnessOf(state: StreamState<unknown>, now: number): Freshness {
  const ageMs = state.receivedAt === undefined ? undefined : Math.max(0, now - state.receivedAt);
  const stale = ageMs === undefined || state.phase !== "open" || ageMs > STALE_AFTER_MS;
  return { stale, ageMs };
}

/**
 * Seconds elapsed since a message arrived, for figures that tick between messages (waits,
 * time in state). Capped at the stale limit: once the stream has gone quiet the clocks stop
 * rather than invent how long things went on.
 */
export function elapsedSince(receivedAt: number | undefined, now: number): number {
  if (receivedAt === undefined) return 0;
  return Math.min(Math.max(0, now - receivedAt), STALE_AFTER_MS) / 1000;
}
