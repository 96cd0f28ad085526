import { timestampMs } from "@bufbuild/protobuf/wkt";
import { useBoard } from "../context";
import { formatClock, formatPercent } from "../format";
import type { IntervalServiceLevel } from "../gen/vigie/v1/supervision_pb";

const intervalMs = 15 * 60 * 1000;
const width = 300;
const height = 60;

/**
 * The service level of each 15-minute interval of the day as a line, with the target dashed.
 * Intervals without contacts leave gaps. Empty until the server sends intervals.
 */
export function Sparkline({
  intervals,
  target,
}: {
  intervals: readonly IntervalServiceLevel[];
  target: number | undefined;
}) {
  const { labels, language, timeZone } = useBoard();
  const all = intervals
    .filter((interval) => interval.start !== undefined)
    .map((interval) => ({ start: timestampMs(interval.start!), value: interval.serviceLevel }));
  // The day's list starts at the day start; the line starts with the first contact, so that a
  // centre opening at 08:00 does not squeeze its day into the right end of the line.
  const opening = all.findIndex((point) => point.value !== undefined);
  const points = opening < 0 ? all : all.slice(opening);
  const measured = points.filter((point) => point.value !== undefined);
  if (points.length === 0 || measured.length === 0) {
    return (
      <div class="sparkline is-empty" data-testid="sl-sparkline" data-points="0">
        <svg viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none" aria-hidden="true">
          <line class="sparkline-axis" x1="0" y1={height - 1} x2={width} y2={height - 1} />
        </svg>
        <span class="sparkline-hint">{labels.noDataYet}</span>
      </div>
    );
  }

  const first = points[0]!.start;
  const last = points[points.length - 1]!.start + intervalMs;
  const span = Math.max(last - first, intervalMs);
  // Each interval's value sits at the middle of its quarter hour.
  const x = (start: number) => ((start + intervalMs / 2 - first) / span) * width;
  const y = (value: number) => (1 - Math.min(1, Math.max(0, value))) * (height - 4) + 2;

  // Consecutive measured intervals make one segment; a gap starts a new one. A lone interval
  // becomes a short dash, as a dot would be stretched by the non-uniform scaling.
  const segments: string[] = [];
  let current: [number, number][] = [];
  const close = () => {
    if (current.length === 1) {
      const [px, py] = current[0]!;
      current = [
        [px - 2, py],
        [px + 2, py],
      ];
    }
    if (current.length > 0) segments.push(current.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" "));
    current = [];
  };
  let previousStart: number | undefined;
  for (const point of points) {
    const contiguous = previousStart !== undefined && point.start - previousStart <= intervalMs;
    if (point.value === undefined || !contiguous) close();
    if (point.value !== undefined) current.push([x(point.start), y(point.value)]);
    previousStart = point.start;
  }
  close();

  const latest = measured[measured.length - 1]!;
  return (
    <div class="sparkline" data-testid="sl-sparkline" data-points={String(measured.length)}>
      <svg viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none" role="img" aria-label={labels.slTrend}>
        {target !== undefined && <line class="sparkline-target" x1="0" y1={y(target)} x2={width} y2={y(target)} />}
        {segments.map((segment) => (
          <polyline key={segment} class="sparkline-line" points={segment} />
        ))}
      </svg>
      <div class="sparkline-scale">
        <span>{formatClock(first, language, timeZone, false)}</span>
        <span>
          {formatClock(latest.start, language, timeZone, false)} {formatPercent(latest.value, language)}
        </span>
      </div>
    </div>
  );
}
