//! Process accounting from /proc: CPU time, context switches, threads, peak RSS.

use std::fs;
use std::path::Path;

/// One sample of a process's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// utime + stime of the whole process (exited threads included), in clock ticks.
    pub cpu_ticks: u64,
    /// Voluntary context switches, summed over live threads.
    pub voluntary: u64,
    /// Involuntary context switches, summed over live threads.
    pub involuntary: u64,
    /// Live threads.
    pub threads: u64,
}

impl Sample {
    /// Reads the counters of `pid` (zeros when it is gone).
    pub fn of(pid: u32) -> Sample {
        let mut s = Sample::default();
        if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // rest starts at field 3 (state); utime and stime are fields 14 and 15.
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            s.cpu_ticks = num(11) + num(12);
        }
        if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
            for t in tasks.flatten() {
                s.threads += 1;
                let Ok(status) = fs::read_to_string(t.path().join("status")) else {
                    continue;
                };
                s.voluntary += field(&status, "voluntary_ctxt_switches:").unwrap_or(0);
                s.involuntary += field(&status, "nonvoluntary_ctxt_switches:").unwrap_or(0);
            }
        }
        s
    }

    /// Counters accumulated since `earlier`.
    pub fn since(&self, earlier: &Sample) -> Sample {
        Sample {
            cpu_ticks: self.cpu_ticks.saturating_sub(earlier.cpu_ticks),
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
            threads: self.threads,
        }
    }
}

fn field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Peak resident set size (VmHWM) of `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    field(
        &fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmHWM:",
    )
}

/// Copies `/proc/PID/smaps` and `/proc/PID/status` to `DIR/LABEL.smaps`
/// and `DIR/LABEL.status` (`--smaps DIR`: where the peak RSS lies, mapping
/// by mapping, and the thread count).
pub fn save_maps(pid: u32, dir: &Path, label: &str) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    for what in ["smaps", "status"] {
        let text = fs::read(format!("/proc/{pid}/{what}"))?;
        fs::write(dir.join(format!("{label}.{what}")), text)?;
    }
    Ok(())
}

/// Clock ticks per second (AT_CLKTCK from the auxiliary vector; 100 if unreadable).
pub fn clock_ticks() -> u64 {
    const AT_CLKTCK: u64 = 17;
    if let Ok(auxv) = fs::read("/proc/self/auxv") {
        for pair in auxv.chunks_exact(16) {
            let key = u64::from_ne_bytes(pair[..8].try_into().expect("8 bytes"));
            let val = u64::from_ne_bytes(pair[8..].try_into().expect("8 bytes"));
            if key == AT_CLKTCK && val > 0 {
                return val;
            }
        }
    }
    100
}

/// The first child process of `pid` (the MCP server under a proxy).
pub fn child_of(pid: u32) -> Option<u32> {
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(c) = fs::read_to_string(t.path().join("children"))
                && let Some(first) = c.split_whitespace().next()
            {
                return first.parse().ok();
            }
        }
    }
    // No /proc/*/task/*/children: scan every process's parent.
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat"))
            && let Some((_, rest)) = stat.rsplit_once(')')
            && rest.split_whitespace().nth(1) == Some(&pid.to_string())
        {
            return Some(p);
        }
    }
    None
}
