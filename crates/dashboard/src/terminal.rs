//! Full-screen terminal set-up and restoration (on drop, and on panic through a panic hook).

use std::io::{self, Stdout};
use std::panic::{set_hook, take_hook};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::Show;
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};

use crate::draw::draw;
use crate::state::DashboardState;

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether the dashboard owns the terminal (false after a restore, e.g. by the panic hook: the
/// render thread then stops drawing).
pub fn terminal_active() -> bool {
    ACTIVE.load(Ordering::SeqCst)
}

/// Leaves raw mode and the alternate screen and shows the cursor; idempotent.
pub fn restore_terminal() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
    }
}

/// Owns the terminal while the dashboard is shown.
pub struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    previous_hook: Option<Arc<PanicHook>>,
}

impl TerminalGuard {
    /// Raw mode + alternate screen, and a panic hook that restores the terminal before the
    /// previous hook prints the panic.
    pub fn enter() -> io::Result<Self> {
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        if let Err(e) = execute!(io::stdout(), EnterAlternateScreen) {
            restore_terminal();
            return Err(e);
        }
        let terminal = match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(t) => t,
            Err(e) => {
                restore_terminal();
                return Err(e);
            }
        };
        let previous_hook: Arc<PanicHook> = Arc::new(take_hook());
        let prev = previous_hook.clone();
        set_hook(Box::new(move |info| {
            restore_terminal();
            prev(info);
        }));
        Ok(Self { terminal, previous_hook: Some(previous_hook) })
    }

    /// Draws the dashboard (nothing once the terminal was restored).
    pub fn draw(&mut self, state: &DashboardState) -> io::Result<()> {
        if terminal_active() {
            self.terminal.draw(|f| draw(f, state))?;
        }
        Ok(())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
        // The panic hook cannot be changed from a panicking thread; ours stays (it is idempotent).
        if !std::thread::panicking() {
            let _ = take_hook();
            if let Some(prev) = self.previous_hook.take().and_then(Arc::into_inner) {
                set_hook(prev);
            }
        }
    }
}
