//! Between-step hooks wired into the training loop: the thermal scheduler (pause, throttle,
//! set-point, critical stop) and the dashboard's keys (pause, save now, graceful stop).

use bit_axon_dashboard::TrainControls;
use bit_axon_thermal::{Gate, ThermalScheduler};

use crate::strategy::{HookAction, StepHook};

/// The thermal scheduler, consulted after every optimizer step; also waits while the user's
/// pause key is on (the scheduler watches the same flag).
pub struct ThermalHook {
    pub scheduler: ThermalScheduler,
    pub controls: TrainControls,
}

impl StepHook for ThermalHook {
    fn after_step(&mut self, step: u64, busy_s: f64) -> HookAction {
        let gate = self.scheduler.gate(step, busy_s);
        if let Gate::CriticalStop { temp_c } = gate {
            return HookAction::SaveAndStop(format!(
                "critical temperature {temp_c:.1} °C: checkpoint saved, run stopped"
            ));
        }
        if self.controls.stop_requested() {
            return HookAction::SaveAndStop("stopped from the dashboard (q): checkpoint saved".into());
        }
        if self.controls.take_save() {
            return HookAction::SaveNow;
        }
        HookAction::Continue
    }

    fn summary(&self) -> Option<String> {
        self.scheduler.is_managed().then(|| self.scheduler.totals().to_string())
    }
}
