//! The dashboard screen.
//!
//! ```text
//! ┌ Bit-Axon · label ──────────────────────────────────────────────────────────┐
//! │██████████░░░░░ step 120/5000 (2.4 %) · epoch 1/3 · elapsed 1m01s · ETA 41m  │
//! │tokens/s 1830 · cooling lost 3m12s (5.1 %) · memory 3.20 GiB                 │
//! └─────────────────────────────────────────────────────────────────────────────┘
//! ┌ Loss ─────────────────────────────────┐┌ Temperature ────────────────────────┐
//! │ train / eval curves                   ││ 84.9 °C  THROTTLED                  │
//! │                                       ││ pause 90 · resume 80 · critical 100 │
//! │                                       ││ chart with the limits as lines      │
//! └───────────────────────────────────────┘└─────────────────────────────────────┘
//! ┌ Learning rate ──┐┌ Tokens/s ─────────┐┌ Metrics ────────────────────────────┐
//! └─────────────────┘└───────────────────┘└─────────────────────────────────────┘
//!  p pause/resume · s save checkpoint now · q stop (checkpoint, then exit)
//! ```
//!
//! Below 100 columns or 30 rows the learning-rate and tokens/s curves give way to the metrics
//! table (their latest values stay in it); below 60×16 a text-only summary is drawn.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Cell, Chart, Dataset, Gauge, GraphType, Paragraph, Row, Table};

use crate::names;
use crate::state::{DashboardState, Split};

const TRAIN: Color = Color::Cyan;
const EVAL: Color = Color::Yellow;

/// Draws the dashboard for `state` on the whole frame.
pub fn draw(frame: &mut Frame, state: &DashboardState) {
    let area = frame.area();
    if area.width < 60 || area.height < 16 {
        draw_compact(frame, area, state);
        return;
    }
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Length(4), Constraint::Min(8), Constraint::Percentage(35), Constraint::Length(1)])
        .split(area);
    draw_header(frame, rows[0], state);
    let middle = Layout::default()
        .direction(Direction::Horizontal)
        .constraints(if area.width >= 100 {
            [Constraint::Percentage(55), Constraint::Percentage(45)]
        } else {
            [Constraint::Percentage(50), Constraint::Percentage(50)]
        })
        .split(rows[1]);
    draw_loss(frame, middle[0], state);
    draw_temperature(frame, middle[1], state);
    if area.width >= 100 && area.height >= 30 {
        let bottom = Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Percentage(30), Constraint::Percentage(30), Constraint::Percentage(40)])
            .split(rows[2]);
        draw_series(frame, bottom[0], state, names::LEARNING_RATE, "Learning rate");
        draw_series(frame, bottom[1], state, names::TOKENS_PER_SECOND, "Tokens/s");
        draw_table(frame, bottom[2], state);
    } else {
        draw_table(frame, rows[2], state);
    }
    draw_help(frame, rows[3], state);
}

/// `1h02m`, `3m12s`, `45s`.
pub fn fmt_duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "?".to_string();
    }
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Short number: `3.214`, `2.0e-4`, `1830`, `1.2e6`.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_bytes(b: f64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    if b >= GIB { format!("{:.2} GiB", b / GIB) } else { format!("{:.0} MiB", b / (1024.0 * 1024.0)) }
}

fn progress_text(state: &DashboardState) -> String {
    let mut parts = Vec::new();
    if state.total_steps > 0 {
        parts.push(format!(
            "step {}/{} ({:.1} %)",
            state.step,
            state.total_steps,
            100.0 * state.step as f64 / state.total_steps as f64
        ));
    } else {
        parts.push(format!("step {}", state.step));
    }
    if state.epoch > 0 {
        parts.push(if state.total_epochs > 0 {
            format!("epoch {}/{}", state.epoch, state.total_epochs)
        } else {
            format!("epoch {}", state.epoch)
        });
    }
    parts.push(format!("elapsed {}", fmt_duration(state.time_s)));
    match (&state.finished, state.eta_s()) {
        (Some(reason), _) => parts.push(reason.clone()),
        (None, Some(eta)) => parts.push(format!("ETA {}", fmt_duration(eta))),
        (None, None) => parts.push("ETA ?".to_string()),
    }
    parts.join(" · ")
}

fn info_text(state: &DashboardState) -> String {
    let mut parts = Vec::new();
    if let Some(t) = state.latest(Split::Train, names::TOKENS_PER_SECOND) {
        parts.push(format!("tokens/s {}", fmt_num(t)));
    }
    let lost = if state.time_s > 0.0 { 100.0 * state.cooling_s / state.time_s } else { 0.0 };
    parts.push(format!("cooling lost {} ({lost:.1} %)", fmt_duration(state.cooling_s)));
    if let Some(m) = state.memory_bytes {
        parts.push(format!("memory {}", fmt_bytes(m)));
    }
    if let Some(s) = &state.status {
        parts.push(s.clone());
    }
    parts.join(" · ")
}

fn draw_header(frame: &mut Frame, area: Rect, state: &DashboardState) {
    let block = Block::bordered()
        .title(Span::styled(format!(" Bit-Axon · {} ", state.label), Style::default().add_modifier(Modifier::BOLD)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let lines = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Length(1), Constraint::Length(1)])
        .split(inner);
    let ratio =
        if state.total_steps > 0 { (state.step as f64 / state.total_steps as f64).clamp(0.0, 1.0) } else { 0.0 };
    let gauge = Gauge::default()
        .gauge_style(Style::default().fg(Color::Green).bg(Color::DarkGray))
        .ratio(ratio)
        .label(progress_text(state));
    frame.render_widget(gauge, lines[0]);
    frame.render_widget(Paragraph::new(info_text(state)), lines[1]);
}

/// A horizontal limit line: label, y, color, its two end points.
type LimitLine = (String, f64, Color, [(f64, f64); 2]);

struct Curve<'a> {
    name: String,
    points: &'a [(f64, f64)],
    color: Color,
}

/// A line chart of `curves` plus horizontal `lines` (label, y, color); `None` without data.
fn chart<'a>(curves: &[Curve<'a>], lines: &'a [LimitLine]) -> Option<Chart<'a>> {
    let all = curves.iter().flat_map(|c| c.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return None;
    }
    for (_, y, _, _) in lines {
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = if y1 > y0 { 0.05 * (y1 - y0) } else { 0.5_f64.max(y0.abs() * 0.05) };
    let (y0, y1) = (y0 - pad, y1 + pad);
    let mut datasets: Vec<Dataset> = lines
        .iter()
        .map(|(_, _, color, pts)| {
            Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::default().fg(*color))
                .data(pts)
        })
        .collect();
    for c in curves {
        let mut d = Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(c.color))
            .data(c.points);
        // An unnamed curve has no legend entry.
        if !c.name.is_empty() {
            d = d.name(c.name.clone());
        }
        datasets.push(d);
    }
    let axis_style = Style::default().fg(Color::Gray);
    Some(
        Chart::new(datasets)
            .x_axis(Axis::default().style(axis_style).bounds([x0, x1]).labels([fmt_num(x0), fmt_num(x1)]))
            .y_axis(Axis::default().style(axis_style).bounds([y0, y1]).labels([
                fmt_num(y0),
                fmt_num(0.5 * (y0 + y1)),
                fmt_num(y1),
            ])),
    )
}

fn render_chart_or_wait(frame: &mut Frame, area: Rect, block: Block, chart: Option<Chart>) {
    match chart {
        Some(c) => frame.render_widget(c.block(block), area),
        None => frame.render_widget(Paragraph::new("waiting for data…").block(block), area),
    }
}

fn draw_loss(frame: &mut Frame, area: Rect, state: &DashboardState) {
    let train = state.points(Split::Train, names::LOSS);
    let eval = state.points(Split::Eval, names::LOSS);
    let mut title = vec![Span::styled(" Loss ", Style::default().add_modifier(Modifier::BOLD))];
    if let Some(v) = train.last() {
        title.push(Span::styled(format!("train {} ", fmt_num(v.1)), Style::default().fg(TRAIN)));
    }
    if let Some(v) = eval.last() {
        title.push(Span::styled(format!("eval {} ", fmt_num(v.1)), Style::default().fg(EVAL)));
    }
    let mut curves = vec![Curve { name: "train".into(), points: train, color: TRAIN }];
    if !eval.is_empty() {
        curves.push(Curve { name: "eval".into(), points: eval, color: EVAL });
    }
    render_chart_or_wait(frame, area, Block::bordered().title(Line::from(title)), chart(&curves, &[]));
}

fn draw_series(frame: &mut Frame, area: Rect, state: &DashboardState, name: &str, title: &str) {
    let points = state.points(Split::Train, name);
    let title = match points.last() {
        Some(v) => format!(" {title} {} ", fmt_num(v.1)),
        None => format!(" {title} "),
    };
    let curves = [Curve { name: name.to_string(), points, color: TRAIN }];
    render_chart_or_wait(frame, area, Block::bordered().title(title), chart(&curves, &[]));
}

fn state_style(state: &str) -> Style {
    let color = match state {
        "running" => Color::Green,
        "throttled" => Color::Yellow,
        "paused" => Color::LightMagenta,
        "critical" => Color::Red,
        _ => Color::Gray,
    };
    Style::default().fg(color).add_modifier(Modifier::BOLD)
}

fn draw_temperature(frame: &mut Frame, area: Rect, state: &DashboardState) {
    let block = Block::bordered().title(Span::styled(" Temperature ", Style::default().add_modifier(Modifier::BOLD)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let parts = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Length(1), Constraint::Length(1), Constraint::Min(1)])
        .split(inner);

    let temp = state.temperature.last().map_or("-- °C".to_string(), |p| format!("{:.1} °C", p.1));
    let thermal = state.thermal_state.clone().unwrap_or_else(|| "no thermal data".to_string());
    let mut first = vec![
        Span::styled(temp, Style::default().add_modifier(Modifier::BOLD)),
        Span::raw("  "),
        Span::styled(thermal.to_uppercase(), state_style(&thermal)),
    ];
    if let Some(a) = &state.thermal_action {
        first.push(Span::styled(format!("  {a}"), Style::default().fg(Color::Gray)));
    }
    frame.render_widget(Paragraph::new(Line::from(first)), parts[0]);

    let x_range = match (state.temperature.first(), state.temperature.last()) {
        (Some(a), Some(b)) => [a.0, b.0.max(a.0 + 1.0)],
        _ => [0.0, 1.0],
    };
    let mut lines: Vec<LimitLine> = Vec::new();
    if let Some(l) = &state.limits {
        let mut add = |label: &str, y: f64, color: Color| {
            if y.is_finite() {
                lines.push((format!("{label} {y:.0}"), y, color, [(x_range[0], y), (x_range[1], y)]));
            }
        };
        add("pause", l.pause_c, Color::LightMagenta);
        add("resume", l.resume_c, Color::Green);
        if let Some(s) = l.setpoint_c {
            add("set-point", s, Color::Blue);
        }
        if let Some(s) = l.throttle_start_c {
            add("throttle", s, Color::Yellow);
        }
        add("critical", l.critical_c, Color::Red);
    }
    let limit_spans: Vec<Span> = if lines.is_empty() {
        vec![Span::styled("no thermal limits (unmanaged)", Style::default().fg(Color::Gray))]
    } else {
        let mut sorted: Vec<&LimitLine> = lines.iter().collect();
        sorted.sort_by(|a, b| a.1.total_cmp(&b.1));
        let full: usize = sorted.iter().map(|l| l.0.chars().count() + 3).sum();
        // Narrow panel: short labels and single spaces.
        let compact = full > parts[1].width as usize + 3;
        let mut spans = Vec::new();
        for (i, l) in sorted.iter().enumerate() {
            if i > 0 {
                spans.push(Span::raw(if compact { " " } else { " · " }));
            }
            let text = if compact {
                l.0.replace("set-point", "set").replace("throttle", "thr").replace("critical", "crit")
            } else {
                l.0.clone()
            };
            spans.push(Span::styled(text, Style::default().fg(l.2)));
        }
        spans
    };
    frame.render_widget(Paragraph::new(Line::from(limit_spans)), parts[1]);
    let curves = [Curve { name: String::new(), points: &state.temperature, color: Color::LightRed }];
    match chart(&curves, &lines) {
        Some(c) => frame.render_widget(c, parts[2]),
        None => frame.render_widget(Paragraph::new("waiting for a temperature reading…"), parts[2]),
    }
}

fn draw_table(frame: &mut Frame, area: Rect, state: &DashboardState) {
    let header = Row::new(["metric", "train", "eval"]).style(Style::default().add_modifier(Modifier::BOLD));
    let v = |s: Split, n: &str| state.latest(s, n).map_or(String::new(), fmt_num);
    let mut rows: Vec<Row> = state
        .metric_names()
        .into_iter()
        .map(|n| Row::new([Cell::from(n.clone()), Cell::from(v(Split::Train, &n)), Cell::from(v(Split::Eval, &n))]))
        .collect();
    for (k, t) in &state.text {
        rows.push(Row::new([Cell::from(k.clone()), Cell::from(t.clone()), Cell::from("")]));
    }
    let table = Table::new(rows, [Constraint::Percentage(50), Constraint::Percentage(25), Constraint::Percentage(25)])
        .header(header)
        .block(Block::bordered().title(" Metrics "));
    frame.render_widget(table, area);
}

fn draw_help(frame: &mut Frame, area: Rect, state: &DashboardState) {
    let line = Line::from(vec![
        Span::styled(format!(" {} ", state.key_help), Style::default().fg(Color::Black).bg(Color::Gray)),
        Span::raw(" "),
        Span::styled(state.status.clone().unwrap_or_default(), Style::default().fg(Color::Yellow)),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_compact(frame: &mut Frame, area: Rect, state: &DashboardState) {
    let mut lines = vec![
        Line::from(Span::styled(format!("Bit-Axon · {}", state.label), Style::default().add_modifier(Modifier::BOLD))),
        Line::from(progress_text(state)),
    ];
    let loss = |s| state.latest(s, names::LOSS).map_or("--".to_string(), fmt_num);
    lines.push(Line::from(format!("loss train {} eval {}", loss(Split::Train), loss(Split::Eval))));
    let thermal = state.thermal_state.clone().unwrap_or_else(|| "no thermal data".to_string());
    let temp = state.temperature.last().map_or("--".to_string(), |p| format!("{:.1} °C", p.1));
    lines.push(Line::from(vec![
        Span::raw(format!("temperature {temp} ")),
        Span::styled(thermal.clone(), state_style(&thermal)),
    ]));
    lines.push(Line::from(info_text(state)));
    lines.push(Line::from(state.key_help.clone()));
    frame.render_widget(Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: true }), area);
}
