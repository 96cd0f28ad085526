// What every part of a board needs: the API, the labels, the site and its clock.

import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Api } from "./api";
import type { Labels, Language } from "./i18n";
import type { AccessProblem } from "./stream";

export interface Board {
  api: Api;
  labels: Labels;
  language: Language;
  site: string;
  siteName: string | undefined;
  /** IANA zone of the site, for times of day; undefined until known. */
  timeZone: string | undefined;
  /** Changes whenever the token changes: part of every stream's key, so streams start over. */
  accessEpoch: number;
  hasToken: boolean;
  onAccessProblem: (problem: AccessProblem) => void;
  /** Builds an address inside the wallboard, keeping `?api`, `?site` and `?lang`. */
  href: (path: string) => string;
  navigate: (href: string) => void;
}

export const BoardContext = createContext<Board | undefined>(undefined);

export function useBoard(): Board {
  const board = useContext(BoardContext);
  if (board === undefined) throw new Error("useBoard outside a board");
  return board;
}

/** `performance.now()`, advanced a few times a second so that clocks on the wall tick. */
export const NowContext = createContext<number>(0);

export function useNow(): number {
  return useContext(NowContext);
}
