//! Output: the table, the JSON file, and the SVG plot of sweeps (hand-written SVG: two panels,
//! forwarded pps and p99 latency against offered load, one line per series).

use std::fmt::Write as _;

use serde::Serialize;

use crate::traffic::TrafficResult;

/// One measured run with what it was.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// "fanout", "floor" or "external".
    pub scenario: String,
    /// Series label for plots (scenario + variant).
    pub series: String,
    /// Producers.
    pub producers: usize,
    /// Consumers per producer.
    pub consumers_per_producer: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Server workers (0 for floor/external).
    pub workers: usize,
    /// Backend asked for.
    pub backend_requested: String,
    /// Backend the engine used.
    pub backend_used: String,
    /// Process RSS at the end of the window, bytes (in-process: server and bench together).
    pub rss_bytes: u64,
    /// The measurements.
    pub result: TrafficResult,
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

/// The results table.
pub fn table(runs: &[RunRecord]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<22} {:>7} {:>5} {:>9} {:>10} {:>7} {:>8} {:>8} {:>8} {:>7} {:>8} {:>6} {:>6} {:>7}",
        "series",
        "PxC",
        "size",
        "offered",
        "fwd pps",
        "loss%",
        "p50 us",
        "p99 us",
        "p999 us",
        "srv %",
        "us/fwd",
        "gen %",
        "rcv %",
        "RSS MB"
    );
    for r in runs {
        let t = &r.result;
        let _ = writeln!(
            s,
            "{:<22} {:>7} {:>5} {:>9.0} {:>10.0} {:>7.3} {:>8.1} {:>8.1} {:>8.1} {:>7} {:>8} {:>6.0} {:>6.0} {:>7.1}{}",
            r.series,
            format!("{}x{}", r.producers, r.consumers_per_producer),
            r.payload,
            t.offered_pps,
            t.forwarded_pps,
            t.loss_pct,
            t.latency_p50_us,
            t.latency_p99_us,
            t.latency_p999_us,
            opt(t.server_cpu_pct, 0),
            opt(t.server_cpu_us_per_fwd, 2),
            t.generator_cpu_pct,
            t.receiver_cpu_pct,
            r.rss_bytes as f64 / 1048576.0,
            if t.client_bound { "  CLIENT-BOUND" } else { "" }
        );
    }
    s
}

/// A panel of the sweep plot: its label and the value it shows.
type Panel = (&'static str, fn(&TrafficResult) -> f64);

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG with forwarded pps (left) and p99 latency (right) against offered pps, per series.
pub fn sweep_svg(runs: &[RunRecord], title: &str) -> String {
    let mut series: Vec<(String, Vec<&RunRecord>)> = Vec::new();
    for r in runs {
        match series.iter_mut().find(|(n, _)| *n == r.series) {
            Some((_, v)) => v.push(r),
            None => series.push((r.series.clone(), vec![r])),
        }
    }
    let (w, h, pw, ph, ml, mt) = (1000.0, 440.0, 380.0, 300.0, 80.0, 50.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    let xmax = runs
        .iter()
        .map(|r| r.result.offered_pps)
        .fold(1.0, f64::max)
        * 1.05;
    let panels: [Panel; 2] = [
        ("forwarded pps", |t| t.forwarded_pps),
        ("p99 latency (us)", |t| t.latency_p99_us),
    ];
    for (pi, (label, get)) in panels.iter().enumerate() {
        let x0 = ml + pi as f64 * (pw + 120.0);
        let ymax = runs.iter().map(|r| get(&r.result)).fold(1.0, f64::max) * 1.1;
        let _ = writeln!(
            s,
            r#"<rect x="{x0}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
        );
        for k in 0..=4 {
            let f = k as f64 / 4.0;
            let (gx, gy) = (x0 + f * pw, mt + ph - f * ph);
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" y1="{gy}" x2="{}" y2="{gy}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{:.0}</text>"##,
                x0 + pw,
                x0 - 4.0,
                gy + 4.0,
                f * ymax
            );
            let _ = writeln!(
                s,
                r#"<text x="{gx}" y="{}" text-anchor="middle">{:.0}</text>"#,
                mt + ph + 16.0,
                f * xmax
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">offered pps (input)</text>"#,
            x0 + pw / 2.0,
            mt + ph + 34.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{label}</text>"#,
            x0 + pw / 2.0,
            mt - 8.0
        );
        for (si, (_, rs)) in series.iter().enumerate() {
            let c = COLORS[si % COLORS.len()];
            let pts: Vec<String> = rs
                .iter()
                .map(|r| {
                    format!(
                        "{:.1},{:.1}",
                        x0 + r.result.offered_pps / xmax * pw,
                        mt + ph - get(&r.result) / ymax * ph
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
            for p in &pts {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(s, r#"<circle cx="{px}" cy="{py}" r="3" fill="{c}"/>"#);
            }
        }
    }
    for (si, (name, _)) in series.iter().enumerate() {
        let c = COLORS[si % COLORS.len()];
        let y = h - 30.0 + 0.0 * si as f64;
        let x = ml + si as f64 * 220.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="14" height="4" fill="{c}"/><text x="{}" y="{y}">{}</text>"#,
            y - 4.0,
            x + 18.0,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}
