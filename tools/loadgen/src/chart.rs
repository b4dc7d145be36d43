//! The latency-by-percentile chart (`latency.svg`).

use std::path::Path;

use anyhow::{anyhow, Result};

fn pct_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let s = format!("{p:.5}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

fn us_label(y: f64) -> String {
    if y >= 1_000_000.0 {
        format!("{:.0} s", y / 1e6)
    } else if y >= 1000.0 {
        format!("{:.0} ms", y / 1e3)
    } else if y >= 1.0 {
        format!("{y:.0} µs")
    } else {
        format!("{:.0} ns", y * 1e3)
    }
}

pub fn chart(path: &Path, title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<()> {
    use plotters::prelude::*;
    let pts = || series.iter().flat_map(|(_, p)| p.iter());
    if pts().next().is_none() {
        return Ok(());
    }
    let xmax = pts().map(|p| p.0).fold(10.0, f64::max) * 1.2;
    let ymin = pts().map(|p| p.1).fold(f64::INFINITY, f64::min).max(0.001) / 1.5;
    let ymax = pts().map(|p| p.1).fold(0.0, f64::max).max(ymin * 10.0) * 1.5;
    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut ch = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d((1f64..xmax).log_scale(), (ymin..ymax).log_scale())
        .map_err(|e| anyhow!("{e}"))?;
    ch.configure_mesh()
        .x_desc("percentile (x = 1/(1-percentile), log scale)")
        .y_desc("latency (log scale)")
        .x_label_formatter(&|x| pct_label(*x))
        .y_label_formatter(&|y| us_label(*y))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, (name, p)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        ch.draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    ch.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
