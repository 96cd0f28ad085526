//! The report's charts, drawn by plotters as SVG into a string: volume, service level and AHT
//! per interval. Text is left to the browser (`<text>` elements, no font file read), and the
//! SVG is meant to sit inline in an HTML page, its legend beside it in HTML.

use std::error::Error;
use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

use super::labels::Labels;
use super::{clock, html_escape};

/// Width and height of every chart, in pixels (scaled down by the page's CSS when narrower).
const SIZE: (u32, u32) = (860, 250);
const FONT: (&str, u32) = ("sans-serif", 14);
const OFFERED: RGBColor = RGBColor(0x9a, 0xa5, 0xb1);
const ANSWERED: RGBColor = RGBColor(0x2f, 0x6f, 0xb3);
const ABANDONED: RGBColor = RGBColor(0xd0, 0x4a, 0x35);
const LINE: RGBColor = RGBColor(0x2f, 0x6f, 0xb3);
const TARGET: RGBColor = RGBColor(0x2e, 0x8b, 0x57);
const GRID: RGBColor = RGBColor(0xe3, 0xe6, 0xea);

/// One interval as the charts read it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ChartInterval {
    /// Local start, `HH:MM`.
    pub label: String,
    /// Whether the interval starts on the hour (local clock).
    pub on_the_hour: bool,
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    /// A fraction.
    pub service_level: Option<f64>,
    /// Seconds.
    pub aht: Option<f64>,
}

/// How a series is shown in the legend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    Bar,
    Line,
    DashedLine,
}

/// One entry of a chart's legend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LegendItem {
    pub label: &'static str,
    /// CSS colour, `#rrggbb`.
    pub color: String,
    pub mark: Mark,
}

impl LegendItem {
    fn new(label: &'static str, color: RGBColor, mark: Mark) -> LegendItem {
        LegendItem {
            label,
            color: format!("#{:02x}{:02x}{:02x}", color.0, color.1, color.2),
            mark,
        }
    }
}

/// A drawn chart: inline SVG and its legend.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Chart {
    pub svg: String,
    pub legend: Vec<LegendItem>,
}

type DrawResult = Result<(), Box<dyn Error>>;

/// An axis whose ticks are chosen here (plotters' own key-point binding offers no label
/// formatting for `f64`): interval `i` spans `[i, i + 1)` on the x axis; round values on the
/// y axis.
struct FixedTicks {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for FixedTicks {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = f64::from(limit.1 - limit.0);
        let share = (value - self.range.start) / (self.range.end - self.range.start);
        limit.0 + (share * span).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// The x axis: ticks at the interval starts on the hour, fewer when the span is long.
fn x_axis(intervals: &[ChartInterval]) -> FixedTicks {
    let hours: Vec<usize> = (0..intervals.len())
        .filter(|&i| intervals[i].on_the_hour)
        .collect();
    let ticks = if hours.is_empty() {
        (0..intervals.len()).map(|i| i as f64).collect()
    } else {
        let step = hours.len().div_ceil(12).max(1);
        hours.into_iter().step_by(step).map(|i| i as f64).collect()
    };
    FixedTicks {
        range: 0.0..intervals.len().max(1) as f64,
        ticks,
    }
}

/// A y axis from 0 with ticks every `step`, at most about six of them, over at least `top`.
fn y_axis(top: f64, steps: &[f64]) -> FixedTicks {
    let step = steps
        .iter()
        .copied()
        .find(|step| top / step <= 6.0)
        .unwrap_or_else(|| {
            let largest = steps.last().copied().unwrap_or(1.0);
            (top / 6.0 / largest).ceil() * largest
        });
    let count = (top / step).ceil().max(1.0) as usize;
    FixedTicks {
        range: 0.0..count as f64 * step,
        ticks: (0..=count).map(|i| i as f64 * step).collect(),
    }
}

fn x_label(intervals: &[ChartInterval], x: f64) -> String {
    let index = x.round();
    if (x - index).abs() > 1e-6 || index < 0.0 {
        return String::new();
    }
    intervals
        .get(index as usize)
        .map(|i| i.label.clone())
        .unwrap_or_default()
}

/// Draws a chart over the intervals: the axes, then `series`.
fn draw(
    intervals: &[ChartInterval],
    y: FixedTicks,
    y_desc: &str,
    format_y: &dyn Fn(&f64) -> String,
    title: &str,
    series: impl FnOnce(
        &mut ChartContext<SVGBackend, Cartesian2d<FixedTicks, FixedTicks>>,
    ) -> DrawResult,
) -> Result<String, Box<dyn Error>> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(64)
            .build_cartesian_2d(x_axis(intervals), y)?;
        let format_x = |x: &f64| x_label(intervals, *x);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .bold_line_style(GRID)
            .x_label_formatter(&format_x)
            .y_label_formatter(format_y)
            .y_desc(y_desc)
            .label_style(FONT)
            .axis_desc_style(FONT)
            .draw()?;
        series(&mut chart)?;
        root.present()?;
    }
    // Inline in HTML the SVG namespace is implied (and no URL appears in the page); the chart
    // is labelled for screen readers.
    let svg = svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
    Ok(svg.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{}\" ", html_escape(title)),
        1,
    ))
}

/// Offered, answered and abandoned contacts per interval, as grouped bars.
pub(crate) fn volume(
    intervals: &[ChartInterval],
    labels: &Labels,
) -> Result<Chart, Box<dyn Error>> {
    let highest = intervals
        .iter()
        .map(|i| i.offered.max(i.answered).max(i.abandoned))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let format_y = |y: &f64| format!("{y:.0}");
    let bars = [
        (labels.offered, OFFERED, 0.08),
        (labels.answered, ANSWERED, 0.36),
        (labels.abandoned, ABANDONED, 0.64),
    ];
    let svg = draw(
        intervals,
        // Room above the highest bar.
        y_axis(
            highest * 1.1,
            &[1.0, 2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0],
        ),
        labels.contacts,
        &format_y,
        labels.volume_chart,
        |chart| {
            for (slot, (_, color, offset)) in bars.into_iter().enumerate() {
                chart.draw_series(intervals.iter().enumerate().map(|(i, interval)| {
                    let value = [interval.offered, interval.answered, interval.abandoned][slot];
                    let left = i as f64 + offset;
                    Rectangle::new([(left, 0.0), (left + 0.28, value as f64)], color.filled())
                }))?;
            }
            Ok(())
        },
    )?;
    Ok(Chart {
        svg,
        legend: bars
            .iter()
            .map(|(label, color, _)| LegendItem::new(label, *color, Mark::Bar))
            .collect(),
    })
}

/// Runs of consecutive intervals with a value, as points at the middle of each interval.
fn runs(values: &[Option<f64>]) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match value {
            Some(v) => current.push((i as f64 + 0.5, *v)),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// What a line chart shows.
struct LineChart<'a> {
    /// One value per interval; none where the formula has nothing to count (a gap).
    values: Vec<Option<f64>>,
    y: FixedTicks,
    target: Option<f64>,
    y_desc: &'a str,
    format_y: &'a dyn Fn(&f64) -> String,
    series: &'static str,
    title: &'a str,
}

fn line_chart(
    intervals: &[ChartInterval],
    spec: LineChart,
    labels: &Labels,
) -> Result<Chart, Box<dyn Error>> {
    let end = intervals.len().max(1) as f64;
    let target = spec.target;
    let values = spec.values;
    let svg = draw(
        intervals,
        spec.y,
        spec.y_desc,
        spec.format_y,
        spec.title,
        |chart| {
            if let Some(target) = target {
                chart.draw_series(DashedLineSeries::new(
                    [(0.0, target), (end, target)],
                    6,
                    4,
                    TARGET.stroke_width(2),
                ))?;
            }
            for run in runs(&values) {
                chart.draw_series(
                    run.iter()
                        .map(|&point| Circle::new(point, 3, LINE.filled())),
                )?;
                chart.draw_series(LineSeries::new(run, LINE.stroke_width(2)))?;
            }
            Ok(())
        },
    )?;
    let mut legend = vec![LegendItem::new(spec.series, LINE, Mark::Line)];
    if target.is_some() {
        legend.push(LegendItem::new(
            labels.target_line,
            TARGET,
            Mark::DashedLine,
        ));
    }
    Ok(Chart { svg, legend })
}

/// Service level per interval (percent), with the target.
pub(crate) fn service_level(
    intervals: &[ChartInterval],
    target: f64,
    labels: &Labels,
) -> Result<Chart, Box<dyn Error>> {
    let format_y = |y: &f64| format!("{y:.0}\u{a0}%");
    line_chart(
        intervals,
        LineChart {
            values: intervals
                .iter()
                .map(|i| i.service_level.map(|sl| sl * 100.0))
                .collect(),
            y: y_axis(100.0, &[20.0]),
            target: Some(target * 100.0),
            y_desc: labels.service_level,
            format_y: &format_y,
            series: labels.service_level,
            title: labels.sl_chart,
        },
        labels,
    )
}

/// AHT per interval (seconds, labelled `m:ss`), with the target if there is one.
pub(crate) fn aht(
    intervals: &[ChartInterval],
    target: Option<f64>,
    labels: &Labels,
) -> Result<Chart, Box<dyn Error>> {
    let values: Vec<Option<f64>> = intervals.iter().map(|i| i.aht).collect();
    let highest = values
        .iter()
        .flatten()
        .copied()
        .chain(target)
        .fold(60.0_f64, f64::max);
    let format_y = |y: &f64| clock(*y);
    line_chart(
        intervals,
        LineChart {
            values,
            // Whole minutes (or half minutes), with room above the highest point.
            y: y_axis(
                highest * 1.1,
                &[30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0],
            ),
            target,
            y_desc: labels.aht,
            format_y: &format_y,
            series: labels.aht,
            title: labels.aht_chart,
        },
        labels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y_axes_have_round_ticks() {
        let ticks = |axis: FixedTicks| (axis.range.end, axis.ticks);
        assert_eq!(
            ticks(y_axis(100.0, &[20.0])),
            (100.0, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0])
        );
        assert_eq!(ticks(y_axis(275.0, &[30.0, 60.0, 120.0])).0, 300.0);
        assert_eq!(ticks(y_axis(11.0, &[1.0, 2.0, 5.0])).1.len(), 7);
        assert_eq!(ticks(y_axis(1.0, &[1.0, 2.0])), (1.0, vec![0.0, 1.0]));
        // Beyond the largest step, steps grow so that ticks stay few.
        assert!(y_axis(100_000.0, &[1.0, 100.0]).ticks.len() <= 8);
    }

    #[test]
    fn gaps_split_lines() {
        let values = [Some(1.0), Some(2.0), None, Some(3.0), None];
        assert_eq!(
            runs(&values),
            [vec![(0.5, 1.0), (1.5, 2.0)], vec![(3.5, 3.0)]]
        );
    }
}
