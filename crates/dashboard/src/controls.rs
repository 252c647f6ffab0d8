//! The dashboard's keys as shared flags the training loop polls between steps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What a key press did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// `p`: pause toggled; `true` if now paused.
    Pause(bool),
    /// `s`: a checkpoint was requested.
    Save,
    /// `q` or Ctrl-C: a graceful stop was requested.
    Stop,
    /// A second Ctrl-C: the user wants out now (the renderer restores the terminal and exits).
    ForceQuit,
    /// Not a control key.
    None,
}

/// Flags set by the keys `p` (pause / resume), `s` (save a checkpoint now) and `q` (graceful
/// stop: checkpoint, then exit). Clones share the flags.
///
/// The training loop hands [`TrainControls::pause_flag`] and [`TrainControls::stop_flag`] to the
/// thermal scheduler (`with_pause_flag` / `with_stop_flag`), which waits while paused; after each
/// step it calls [`TrainControls::take_save`] and [`TrainControls::stop_requested`].
#[derive(Debug, Clone, Default)]
pub struct TrainControls {
    pause: Arc<AtomicBool>,
    save: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    interrupts: Arc<AtomicU8>,
}

impl TrainControls {
    /// Fresh flags, all clear.
    pub fn new() -> Self {
        Self::default()
    }

    /// Toggles pause; returns `true` if now paused.
    pub fn toggle_pause(&self) -> bool {
        !self.pause.fetch_xor(true, Ordering::SeqCst)
    }

    /// Whether training is paused by the user.
    pub fn paused(&self) -> bool {
        self.pause.load(Ordering::SeqCst)
    }

    /// Requests a checkpoint at the next step boundary.
    pub fn request_save(&self) {
        self.save.store(true, Ordering::SeqCst);
    }

    /// Returns `true` once per save request (clears it).
    pub fn take_save(&self) -> bool {
        self.save.swap(false, Ordering::SeqCst)
    }

    /// Requests a graceful stop (checkpoint, then exit). Also ends a pause.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether a graceful stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The pause flag, for `ThermalScheduler::with_pause_flag`.
    pub fn pause_flag(&self) -> Arc<AtomicBool> {
        self.pause.clone()
    }

    /// The stop flag, for `ThermalScheduler::with_stop_flag`.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Applies a key press (`p`, `s`, `q`, Ctrl-C; upper case too). Key releases are ignored.
    pub fn handle_key(&self, key: KeyEvent) -> KeyAction {
        if key.kind == KeyEventKind::Release {
            return KeyAction::None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && matches!(key.code, KeyCode::Char('c' | 'C')) {
            // Raw mode swallows SIGINT: the first Ctrl-C stops gracefully, the second forces.
            return if self.interrupts.fetch_add(1, Ordering::SeqCst) == 0 {
                self.request_stop();
                KeyAction::Stop
            } else {
                KeyAction::ForceQuit
            };
        }
        match key.code {
            KeyCode::Char('p' | 'P') => KeyAction::Pause(self.toggle_pause()),
            KeyCode::Char('s' | 'S') => {
                self.request_save();
                KeyAction::Save
            }
            KeyCode::Char('q' | 'Q') => {
                self.request_stop();
                KeyAction::Stop
            }
            _ => KeyAction::None,
        }
    }
}

impl KeyAction {
    /// A status message for the dashboard.
    pub fn message(self) -> Option<&'static str> {
        match self {
            KeyAction::Pause(true) => Some("paused by the user (p to resume)"),
            KeyAction::Pause(false) => Some("resumed"),
            KeyAction::Save => Some("checkpoint requested"),
            KeyAction::Stop => Some("stopping: checkpoint, then exit"),
            KeyAction::ForceQuit => Some("quitting now"),
            KeyAction::None => None,
        }
    }
}
