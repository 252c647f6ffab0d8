//! Which temperature sensor would a run use here? Opens each source and prints a reading.
//!
//! `cargo run -p bit-axon-thermal --example thermal_probe [SOURCE...]` (default: auto sysinfo nvml)

use bit_axon_thermal::{Enabled, ThermalConfig, ThermalScheduler};

fn main() {
    let mut sources: Vec<String> = std::env::args().skip(1).collect();
    if sources.is_empty() {
        sources = vec!["auto".into(), "sysinfo".into(), "nvml".into()];
    }
    for source in sources {
        let cfg = ThermalConfig { enabled: Enabled::On, source: source.clone(), ..ThermalConfig::default() };
        match ThermalScheduler::from_config(&cfg) {
            Err(e) => println!("{source}: invalid: {e}"),
            Ok((mut s, warnings)) => {
                s.gate(0, 0.0);
                match s.source_name() {
                    Some(name) => println!("{source}: {name}: {:?} °C", s.status().temp_c),
                    None => println!("{source}: unmanaged: {}", warnings.join("; ")),
                }
            }
        }
    }
}
