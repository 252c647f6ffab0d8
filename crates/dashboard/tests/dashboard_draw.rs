//! The screen on ratatui's TestBackend at two terminal sizes (and a tiny one).

mod common;

use bit_axon_dashboard::{DashboardState, draw};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn render(state: &DashboardState, w: u16, h: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| draw(f, state)).unwrap();
    let buf = terminal.backend().buffer().clone();
    (0..h).map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>()).collect()
}

fn state() -> DashboardState {
    let mut s = DashboardState::new("sft-demo");
    for r in common::run_records() {
        s.apply_record(&r);
    }
    s
}

fn find(lines: &[String], needle: &str) -> Option<(usize, usize)> {
    lines.iter().enumerate().find_map(|(y, l)| l.find(needle).map(|x| (y, l[..x].chars().count())))
}

fn assert_has(lines: &[String], needle: &str) -> (usize, usize) {
    find(lines, needle).unwrap_or_else(|| panic!("{needle:?} not on screen:\n{}", lines.join("\n")))
}

/// Counts braille cells (the chart marker) in a rectangle.
fn braille_in(lines: &[String], rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> usize {
    lines[rows]
        .iter()
        .map(|l| l.chars().skip(cols.start).take(cols.len()).filter(|c| ('\u{2801}'..='\u{28FF}').contains(c)).count())
        .sum()
}

#[test]
fn wide_terminal_120x40_shows_every_panel() {
    let lines = render(&state(), 120, 40);
    let screen = lines.join("\n");
    // Header: title, progress with epoch and ETA (60 of 200 steps at 2 s a step: 4m40s left).
    assert_has(&lines, "Bit-Axon · sft-demo");
    assert_has(&lines, "step 60/200 (30.0 %)");
    assert_has(&lines, "epoch 1");
    assert_has(&lines, "ETA 4m40s");
    assert_has(&lines, "cooling lost 11s (8.8 %)");
    assert_has(&lines, "memory 3.50 GiB");
    // Loss panel on the left with both curves' latest values, drawn (braille cells).
    let (ly, lx) = assert_has(&lines, "Loss");
    assert!(lx < 60, "loss panel should be on the left: {lx}");
    assert_has(&lines, "Loss train 2.703 eval 2.903");
    assert!(braille_in(&lines, ly + 1..ly + 15, 0..65) > 20, "no loss curve:\n{screen}");
    // Temperature panel on the right with reading, state, and the limits in order.
    let (ty, tx) = assert_has(&lines, "Temperature");
    assert!(tx > 60 && ty == ly);
    assert_has(&lines, "84.2 °C  THROTTLED");
    assert_has(&lines, "THROTTLED");
    assert_has(&lines, "resume 80 · set-point 85 · pause 90 · critical 100");
    assert!(braille_in(&lines, ty + 3..ty + 15, 66..120) > 20, "no temperature chart:\n{screen}");
    // Bottom row: learning rate and tokens/s charts and the metrics table, with unknown metrics.
    assert_has(&lines, "Learning rate 2.0e-4");
    assert_has(&lines, "Tokens/s 1860");
    assert_has(&lines, "Metrics");
    assert_has(&lines, "Reward Margin");
    assert_has(&lines, "Grad Norm");
    assert_has(&lines, "Perplexity");
    // Key help on the last line.
    let (hy, _) = assert_has(&lines, "p pause/resume · s save checkpoint now · q stop");
    assert_eq!(hy, 39);
}

#[test]
fn standard_terminal_80x24_keeps_loss_temperature_table_and_help() {
    let lines = render(&state(), 80, 24);
    let screen = lines.join("\n");
    assert_has(&lines, "step 60/200");
    let (ly, lx) = assert_has(&lines, "Loss");
    let (ty, tx) = assert_has(&lines, "Temperature");
    assert!(ly == ty && lx < tx, "{screen}");
    assert_has(&lines, "THROTTLED");
    // The limits line is narrower here: short labels.
    assert_has(&lines, "resume 80 set 85 pause 90 crit 100");
    assert!(braille_in(&lines, ly + 1..ly + 10, 0..40) > 10, "no loss curve:\n{screen}");
    // The lr / tokens/s charts give way to the table, which still lists them.
    assert!(find(&lines, "Learning rate 2").is_none(), "{screen}");
    assert_has(&lines, "Metrics");
    assert_has(&lines, "Learning Rate");
    assert_has(&lines, "Tokens/s");
    let (hy, _) = assert_has(&lines, "p pause/resume");
    assert_eq!(hy, 23);
}

#[test]
fn tiny_terminal_gets_a_text_summary_and_empty_state_draws() {
    let lines = render(&state(), 50, 12);
    assert_has(&lines, "step 60/200");
    assert_has(&lines, "loss train 2.703 eval 2.903");
    assert_has(&lines, "throttled");
    // Nothing recorded yet: panels say so instead of failing.
    let empty = DashboardState::new("new");
    let lines = render(&empty, 120, 40);
    assert_has(&lines, "waiting for data");
    assert_has(&lines, "no thermal limits (unmanaged)");
    assert_has(&lines, "ETA ?");
    let _ = render(&empty, 1, 1);
}
