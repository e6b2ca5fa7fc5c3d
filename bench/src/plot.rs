//! `tether-bench plot`: the SVG of benchmark rows (`plotters`' SVG backend,
//! as the soak's plot: text is SVG `<text>`, no font library).
//!
//! Reads the rows it is given, whatever wrote them: this bench's reports
//! (`--json-out`), and the shared kit's results (a merged
//! `results/*.json` with its `runs`, or one `loadgen -out` row), so the Go
//! prototype (`seed`) and the kit's stand-in sit beside Tether's WebSocket
//! and SSE rows. Up to three panels (one without rows is left out):
//!
//! * TTFT − F p50 and p99 against users (log–log), one line per series;
//! * server CPU per completed message against users;
//! * the capacity rows (a label containing `capacity`): server CPU per
//!   message against tokens per reply, the median of a series' runs.
//!
//! A series is a bench report's `label` and transport (`tether ws`), or a
//! kit row's label up to its first space (`seed`, `stand-in`, `tether`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use plotters::prelude::*;
use serde_json::Value;

#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// Where the SVG goes.
    #[arg(long, default_value = "bench.svg")]
    pub svg: PathBuf,
    /// Heading of the plot.
    #[arg(long, default_value = "tether-bench")]
    pub title: String,
    /// Result files: this bench's `--json-out` reports, the kit's merged
    /// results or single `loadgen -out` rows.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// One benchmark row, reduced to what is plotted.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub series: String,
    pub users: f64,
    pub tokens: Option<f64>,
    pub capacity: bool,
    pub ttft_over_p50: Option<f64>,
    pub ttft_over_p99: Option<f64>,
    pub cpu_us_per_msg: Option<f64>,
}

pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for file in &args.files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        rows.extend(rows_of(&value));
    }
    anyhow::ensure!(!rows.is_empty(), "no plottable rows in the files given");
    write(&args.svg, &rows, &args.title)?;
    eprintln!("wrote {} ({} rows)", args.svg.display(), rows.len());
    Ok(())
}

/// The rows of one result file (any of the three shapes).
pub fn rows_of(value: &Value) -> Vec<Row> {
    if let Some(runs) = value.get("runs").and_then(Value::as_array) {
        return runs.iter().filter_map(kit_row).collect();
    }
    if value.get("transport").is_some() {
        return bench_row(value).into_iter().collect();
    }
    kit_row(value).into_iter().collect()
}

fn cpu_per_msg(cpu_s: Option<f64>, messages: Option<f64>) -> Option<f64> {
    match (cpu_s, messages) {
        (Some(cpu), Some(n)) if n > 0.0 => Some(cpu / n * 1e6),
        _ => None,
    }
}

/// A row of this bench's report.
fn bench_row(v: &Value) -> Option<Row> {
    let over = v.pointer("/latency_ms/3_ttft_overhead");
    let label = v.get("label").and_then(Value::as_str).unwrap_or("tether");
    let transport = v.get("transport")?.as_str()?;
    Some(Row {
        series: format!("{label} {transport}"),
        users: v.get("users")?.as_f64()?,
        tokens: v.get("tokens").and_then(Value::as_f64),
        capacity: label.contains("capacity"),
        ttft_over_p50: over.and_then(|o| o.get("p50")).and_then(Value::as_f64),
        ttft_over_p99: over.and_then(|o| o.get("p99")).and_then(Value::as_f64),
        cpu_us_per_msg: cpu_per_msg(
            v.get("server_cpu_s").and_then(Value::as_f64),
            v.get("messages_ok").and_then(Value::as_f64),
        ),
    })
}

/// A row of the shared kit (`loadgen`); its floor rows (the fake alone) are
/// not a server's and are left out.
fn kit_row(v: &Value) -> Option<Row> {
    if v.get("mode").and_then(Value::as_str) == Some("upstream") {
        return None;
    }
    let label = v.get("label")?.as_str()?;
    let over = v.pointer("/overhead_ms/ttft_minus_F");
    Some(Row {
        series: label.split(' ').next().unwrap_or(label).to_owned(),
        users: v.pointer("/config/users")?.as_f64()?,
        tokens: v
            .pointer("/upstream_model/N_tokens")
            .and_then(Value::as_f64),
        capacity: label.contains("capacity"),
        ttft_over_p50: over.and_then(|o| o.get("p50")).and_then(Value::as_f64),
        ttft_over_p99: over.and_then(|o| o.get("p99")).and_then(Value::as_f64),
        cpu_us_per_msg: cpu_per_msg(
            v.pointer("/server/active_cpu_s").and_then(Value::as_f64),
            v.pointer("/messages/completed").and_then(Value::as_f64),
        ),
    })
}

/// Median of the values (upper median for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Per series, `x → median of y` over the rows that have both.
pub fn points(
    rows: &[Row],
    x: impl Fn(&Row) -> Option<f64>,
    y: impl Fn(&Row) -> Option<f64>,
) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut grouped: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for row in rows {
        if let (Some(x), Some(y)) = (x(row), y(row)) {
            grouped
                .entry(row.series.clone())
                .or_default()
                .entry(x.to_bits())
                .or_default()
                .push(y);
        }
    }
    grouped
        .into_iter()
        .map(|(series, by_x)| {
            let mut line: Vec<(f64, f64)> = by_x
                .into_iter()
                .filter_map(|(x, ys)| Some((f64::from_bits(x), median(ys)?)))
                .collect();
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
            (series, line)
        })
        .collect()
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(0, 0, 0),
];

/// One line of a panel: p99 lines are dashed-looking (thin), p50 thick.
struct Line {
    label: String,
    color: RGBColor,
    width: u32,
    points: Vec<(f64, f64)>,
}

fn lines_of(
    series: &BTreeMap<String, Vec<(f64, f64)>>,
    colors: &BTreeMap<String, RGBColor>,
    suffix: &str,
    width: u32,
) -> Vec<Line> {
    series
        .iter()
        .map(|(name, points)| Line {
            label: format!("{name}{suffix}"),
            color: colors.get(name).copied().unwrap_or(BLACK),
            width,
            points: points.clone(),
        })
        .collect()
}

/// Writes the plot of `rows` to `path`.
pub fn write(path: &Path, rows: &[Row], title: &str) -> anyhow::Result<()> {
    let colors: BTreeMap<String, RGBColor> = {
        let mut names: Vec<&String> = rows.iter().map(|r| &r.series).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .zip(COLORS.iter().cycle())
            .map(|(n, c)| (n.clone(), *c))
            .collect()
    };
    let load: Vec<Row> = rows.iter().filter(|r| !r.capacity).cloned().collect();
    let capacity: Vec<Row> = rows.iter().filter(|r| r.capacity).cloned().collect();
    let users = |r: &Row| Some(r.users);
    let mut latency = lines_of(
        &points(&load, users, |r| r.ttft_over_p50),
        &colors,
        " p50",
        3,
    );
    latency.extend(lines_of(
        &points(&load, users, |r| r.ttft_over_p99),
        &colors,
        " p99",
        1,
    ));
    let cpu = lines_of(&points(&load, users, |r| r.cpu_us_per_msg), &colors, "", 2);
    let cap = lines_of(
        &points(&capacity, |r| r.tokens, |r| r.cpu_us_per_msg),
        &colors,
        "",
        2,
    );
    let panels: Vec<(&str, &str, &[Line], bool)> = [
        (
            "TTFT − F (ms): p50 thick, p99 thin",
            "users (log)",
            latency.as_slice(),
            true,
        ),
        ("server CPU per message (µs)", "users (log)", &cpu, false),
        (
            "capacity rows: server CPU per message (µs), median of runs",
            "tokens per reply (log)",
            &cap,
            false,
        ),
    ]
    .into_iter()
    .filter(|(_, _, lines, _)| lines.iter().any(|l| !l.points.is_empty()))
    .collect();
    let height = 40 + 380 * panels.len().max(1) as u32;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(40);
    head.draw_text(
        title,
        &("sans-serif", 18).into_font().color(&BLACK),
        (16, 12),
    )?;
    let areas = body.split_evenly((panels.len().max(1), 1));
    for ((caption, x_desc, lines, log_y), area) in panels.iter().zip(&areas) {
        panel(area, caption, x_desc, lines, *log_y)?;
    }
    root.present()?;
    Ok(())
}

/// One panel, x on a log scale; y on a log scale when `log_y`.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    x_desc: &str,
    lines: &[Line],
    log_y: bool,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let (x_min, x_max) = all().fold((f64::MAX, 0.0_f64), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let x_range = (x_min / 1.5).max(0.5)..(x_max * 1.5);
    let y_max = all().map(|p| p.1).fold(0.0, f64::max).max(1e-3);
    let y_min_pos = all()
        .map(|p| p.1)
        .filter(|y| *y > 0.0)
        .fold(f64::MAX, f64::min);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .margin_right(28)
        .x_label_area_size(40)
        .y_label_area_size(64);
    if log_y {
        let y_range = (y_min_pos / 2.0)..(y_max * 4.0);
        let mut chart = builder.build_cartesian_2d(x_range.log_scale(), y_range.log_scale())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .light_line_style(WHITE)
            .draw()?;
        draw_lines(&mut chart, lines)?;
    } else {
        // Headroom above the lines for the legend.
        let mut chart = builder.build_cartesian_2d(x_range.log_scale(), 0.0..y_max * 1.6)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .light_line_style(WHITE)
            .draw()?;
        draw_lines(&mut chart, lines)?;
    }
    Ok(())
}

fn draw_lines<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    lines: &[Line],
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for l in lines.iter().filter(|l| !l.points.is_empty()) {
        let style = l.color.stroke_width(l.width);
        chart
            .draw_series(LineSeries::new(l.points.iter().copied(), style))?
            .label(l.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(
            l.points
                .iter()
                .map(|p| Circle::new(*p, 3, l.color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kit_and_the_bench_and_takes_medians() {
        let kit = serde_json::json!({"runs": [
            {"mode": "upstream", "label": "floor", "config": {"users": 1000}},
            {"mode": "seed", "label": "seed u100", "config": {"users": 100},
             "upstream_model": {"N_tokens": 40},
             "overhead_ms": {"ttft_minus_F": {"p50": 0.5, "p99": 2.0}},
             "messages": {"completed": 1000}, "server": {"active_cpu_s": 0.2}},
        ]});
        let rows = rows_of(&kit);
        assert_eq!(rows.len(), 1, "the floor row is not a server's");
        assert_eq!(rows[0].series, "seed");
        assert_eq!(rows[0].cpu_us_per_msg, Some(200.0));
        assert_eq!(rows[0].ttft_over_p99, Some(2.0));
        let bench = serde_json::json!({"transport": "sse", "label": "tether", "users": 10,
            "messages_ok": 100, "server_cpu_s": 0.05,
            "latency_ms": {"3_ttft_overhead": {"p50": 1.0, "p99": 3.0}}});
        let row = rows_of(&bench).remove(0);
        assert_eq!(row.series, "tether sse");
        assert_eq!(row.cpu_us_per_msg, Some(500.0));
        let cap = |cpu: f64| Row {
            series: "tether".into(),
            users: 1000.0,
            tokens: Some(1.0),
            capacity: true,
            ttft_over_p50: None,
            ttft_over_p99: None,
            cpu_us_per_msg: Some(cpu),
        };
        let lines = points(
            &[cap(300.0), cap(500.0), cap(400.0)],
            |r| r.tokens,
            |r| r.cpu_us_per_msg,
        );
        assert_eq!(lines["tether"], vec![(1.0, 400.0)]);
    }

    #[test]
    fn writes_an_svg_with_every_series() {
        let dir = std::env::temp_dir().join(format!("plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("bench.svg");
        let row = |series: &str, users: f64, capacity: bool| Row {
            series: series.into(),
            users,
            tokens: Some(40.0),
            capacity,
            ttft_over_p50: Some(users / 100.0 + 1.0),
            ttft_over_p99: Some(users / 10.0 + 2.0),
            cpu_us_per_msg: Some(300.0),
        };
        let rows = [
            row("tether ws", 10.0, false),
            row("tether ws", 100.0, false),
            row("seed", 100.0, false),
            row("stand-in", 1000.0, true),
        ];
        write(&path, &rows, "test").expect("plot");
        let svg = std::fs::read_to_string(&path).expect("svg written");
        for label in ["tether ws p50", "tether ws p99", "seed p50", "stand-in"] {
            assert!(svg.contains(label), "{label} in the legend");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
