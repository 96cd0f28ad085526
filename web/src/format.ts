// How figures read on the wall: durations as m:ss or h:mm:ss, percentages without decimals,
// times of day in the site's time zone.

import type { Language } from "./i18n";

/** Shown where a figure is undefined (no contact to compute it over), never "0". */
export const NO_VALUE = "–";

/** `mm:ss` below an hour, `h:mm:ss` from one hour on; whole seconds, rounded down. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return NO_VALUE;
  const negative = seconds < 0;
  const total = Math.floor(Math.abs(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  const mmss = `${pad2(minutes)}:${pad2(secs)}`;
  const text = hours > 0 ? `${hours}:${mmss}` : mmss;
  return negative ? `-${text}` : text;
}

function pad2(value: number): string {
  return value < 10 ? `0${value}` : String(value);
}

const percentFormats = new Map<string, Intl.NumberFormat>();

/**
 * A fraction as a whole percentage. Rounded down, so that a service level just under its
 * target never reads as the target itself ("80%" in amber would look wrong).
 */
export function formatPercent(
  fraction: number | undefined,
  language: Language,
  round: "down" | "nearest" = "down",
): string {
  if (fraction === undefined || !Number.isFinite(fraction)) return NO_VALUE;
  // The epsilon absorbs binary noise such as 0.29 * 100 = 28.999999999999996.
  const scaled = fraction * 100;
  const whole = round === "down" ? Math.floor(scaled + 1e-9) : Math.round(scaled);
  let format = percentFormats.get(language);
  if (format === undefined) {
    format = new Intl.NumberFormat(language, { style: "percent", maximumFractionDigits: 0 });
    percentFormats.set(language, format);
  }
  return format.format(whole / 100);
}

const countFormats = new Map<string, Intl.NumberFormat>();

export function formatCount(value: number | bigint | undefined, language: Language): string {
  if (value === undefined) return NO_VALUE;
  let format = countFormats.get(language);
  if (format === undefined) {
    format = new Intl.NumberFormat(language, { maximumFractionDigits: 0 });
    countFormats.set(language, format);
  }
  return format.format(value);
}

/** A signed whole number, "+2" or "−3" (a true minus sign reads better from afar). */
export function formatSigned(value: number, language: Language): string {
  const text = formatCount(Math.abs(value), language);
  return value > 0 ? `+${text}` : value < 0 ? `−${text}` : text;
}

/** An age such as "0.4 s" below ten seconds, then "12 s", then m:ss. */
export function formatAge(milliseconds: number, language: Language): string {
  const seconds = Math.max(0, milliseconds) / 1000;
  if (seconds < 10) {
    return `${seconds.toLocaleString(language, { minimumFractionDigits: 1, maximumFractionDigits: 1 })} s`;
  }
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  return formatDuration(seconds);
}

const timeFormats = new Map<string, Intl.DateTimeFormat>();

/** A time of day, `HH:MM:SS` (or `HH:MM`), in the site's time zone when it is known. */
export function formatClock(
  epochMs: number | undefined,
  language: Language,
  timeZone: string | undefined,
  withSeconds = true,
): string {
  if (epochMs === undefined) return NO_VALUE;
  const key = `${language}|${timeZone ?? ""}|${withSeconds}`;
  let format = timeFormats.get(key);
  if (format === undefined) {
    const options: Intl.DateTimeFormatOptions = {
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    };
    if (withSeconds) options.second = "2-digit";
    try {
      format = new Intl.DateTimeFormat(language, { ...options, timeZone });
    } catch {
      // An unknown zone name: the browser's own zone is better than nothing.
      format = new Intl.DateTimeFormat(language, options);
    }
    timeFormats.set(key, format);
  }
  return format.format(epochMs);
}
