//! The SVG plot of a soak (`plotters`, SVG backend only: text is written as
//! SVG `<text>`, so no font library is needed). Four panels over time:
//! memory, open fds, tasks and sockets, p99 latencies; the warm-up shaded.

use std::path::Path;

use plotters::prelude::*;

use super::sampler::Row;

/// One line of a panel.
struct Line {
    label: &'static str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

fn line(
    rows: &[Row],
    label: &'static str,
    color: RGBColor,
    v: impl Fn(&Row) -> Option<f64>,
) -> Line {
    Line {
        label,
        color,
        points: rows.iter().filter_map(|r| Some((r.t_s, v(r)?))).collect(),
    }
}

/// Writes the plot of `rows` to `path`; `title` heads it.
pub fn write(path: &Path, rows: &[Row], warmup_s: f64, title: &str) -> anyhow::Result<()> {
    let end = rows.iter().map(|r| r.t_s).fold(1.0, f64::max);
    let mib = |k: Option<u64>| k.map(|k| k as f64 / 1024.0);
    let panels = [
        (
            "server memory (MiB)",
            vec![
                line(rows, "VmRSS", RED, |r| mib(r.rss_kib)),
                line(rows, "RssAnon (heap)", RGBColor(255, 140, 0), |r| {
                    mib(r.rss_anon_kib)
                }),
            ],
        ),
        (
            "server open file descriptors",
            vec![line(rows, "fds", BLUE, |r| r.fds.map(|v| v as f64))],
        ),
        (
            "tasks and sockets",
            vec![
                line(rows, "tokio alive tasks", RGBColor(0, 128, 0), |r| r.tasks),
                line(rows, "open WebSockets", RGBColor(128, 0, 128), |r| {
                    r.open_sockets
                }),
            ],
        ),
        (
            "chat latency p99 per window (ms)",
            vec![
                line(rows, "TTFT p99", RGBColor(0, 128, 128), |r| r.ttft_p99_ms),
                line(rows, "send -> done p99", BLACK, |r| r.total_p99_ms),
            ],
        ),
    ];
    let root = SVGBackend::new(path, (960, 1100)).into_drawing_area();
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(40);
    head.draw_text(
        title,
        &("sans-serif", 18).into_font().color(&BLACK),
        (16, 12),
    )?;
    for ((name, lines), area) in panels.iter().zip(body.split_evenly((4, 1))) {
        let top = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        // Headroom above the lines for the legend.
        let top = if top > 0.0 { top * 1.45 } else { 1.0 };
        let mut chart = ChartBuilder::on(&area)
            .caption(*name, ("sans-serif", 16))
            .margin(10)
            .margin_right(28)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..end, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .light_line_style(WHITE)
            .draw()?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, 0.0), (warmup_s.min(end), top)],
            RGBColor(0, 0, 0).mix(0.07).filled(),
        )))?;
        for l in lines {
            let color = l.color;
            chart
                .draw_series(LineSeries::new(
                    l.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(l.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
