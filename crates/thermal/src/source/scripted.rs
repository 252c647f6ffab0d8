//! A fixed temperature trace, for tests and demos.

use std::collections::VecDeque;

use crate::error::Result;
use crate::source::TemperatureSource;

/// Returns the scripted temperatures one per read; after the last one it keeps returning the
/// last value (or `None` if the script was empty).
#[derive(Debug, Clone)]
pub struct ScriptedSource {
    script: VecDeque<Option<f64>>,
    last: Option<f64>,
    reads: usize,
}

impl ScriptedSource {
    /// A trace of readings.
    pub fn new(temps: impl IntoIterator<Item = f64>) -> Self {
        Self::with_gaps(temps.into_iter().map(Some))
    }

    /// A trace in which `None` stands for "no reading right now".
    pub fn with_gaps(temps: impl IntoIterator<Item = Option<f64>>) -> Self {
        Self { script: temps.into_iter().collect(), last: None, reads: 0 }
    }

    /// How many reads were made.
    pub fn reads(&self) -> usize {
        self.reads
    }
}

impl TemperatureSource for ScriptedSource {
    fn name(&self) -> String {
        "scripted".to_string()
    }

    fn read_celsius(&mut self) -> Result<Option<f64>> {
        self.reads += 1;
        match self.script.pop_front() {
            Some(t) => {
                self.last = t;
                Ok(t)
            }
            None => Ok(self.last),
        }
    }
}
