import type { ComponentChildren } from "preact";
import type { Level, TileKind } from "../levels";

export interface TileProps {
  kind: TileKind;
  label: string;
  /** The figure as read on the wall. */
  display: string;
  /** The API's value as a plain number string ("" when unset), for tools reading the page. */
  raw: string;
  level: Level;
  detail?: ComponentChildren;
  /** Drawn under the figure, such as the service-level trend. */
  children?: ComponentChildren;
}

export function Tile({ kind, label, display, raw, level, detail, children }: TileProps) {
  return (
    <section class={`tile level-${level}`} data-testid={`tile-${kind}`} data-value={raw} data-level={level}>
      <h2 class="tile-label">{label}</h2>
      <div class="tile-value">{display}</div>
      <div class="tile-detail">{detail ?? "\u00a0"}</div>
      {children}
    </section>
  );
}

/** A raw figure for `data-value`: numbers as JavaScript prints them, "" when unset. */
export function rawValue(value: number | bigint | undefined): string {
  return value === undefined ? "" : String(value);
}
