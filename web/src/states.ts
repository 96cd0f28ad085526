// Names of the API's enums as the wall and its tools use them.

import { LiveState } from "./gen/vigie/v1/supervision_pb";
import { Channel } from "./gen/vigie/v1/events_pb";

export type StateName =
  "available" | "offered" | "talking" | "on_hold" | "acw" | "pause" | "logged_out" | "unspecified";

/** The lowercase state name without its prefix: `LIVE_STATE_ON_HOLD` is `on_hold`. */
export function stateName(state: LiveState): StateName {
  switch (state) {
    case LiveState.AVAILABLE:
      return "available";
    case LiveState.OFFERED:
      return "offered";
    case LiveState.TALKING:
      return "talking";
    case LiveState.ON_HOLD:
      return "on_hold";
    case LiveState.ACW:
      return "acw";
    case LiveState.PAUSE:
      return "pause";
    case LiveState.LOGGED_OUT:
      return "logged_out";
    default:
      return "unspecified";
  }
}

/** The order states are listed in when counted: what can take a contact first. */
export const stateOrder = [
  "available",
  "offered",
  "talking",
  "on_hold",
  "acw",
  "pause",
  "logged_out",
] as const satisfies readonly StateName[];

export type ChannelName = "voice" | "chat" | "email" | "callback" | "social" | "task" | "unspecified";

export function channelName(channel: Channel): ChannelName {
  switch (channel) {
    case Channel.VOICE:
      return "voice";
    case Channel.CHAT:
      return "chat";
    case Channel.EMAIL:
      return "email";
    case Channel.CALLBACK:
      return "callback";
    case Channel.SOCIAL:
      return "social";
    case Channel.TASK:
      return "task";
    default:
      return "unspecified";
  }
}
