//! Process memory, from `/proc/self/status` (Linux); `None` elsewhere.

/// Resident set size in bytes.
pub fn rss_bytes() -> Option<u64> {
    status_kb("VmRSS:").map(|k| k * 1024)
}

/// Peak resident set size in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kb("VmHWM:").map(|k| k * 1024)
}

fn status_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse().ok())
}
