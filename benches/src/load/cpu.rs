//! CPU time of processes, read from Linux's `/proc/<pid>/task/*/schedstat` (nanoseconds on the
//! CPU per thread). The load generator samples itself and the server under test at both ends of
//! the measurement window, so a report says whether the server or the client was the limit.

use std::path::Path;
use std::time::Duration;

/// Which process to sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    /// The load generator itself.
    SelfProcess,
    /// Another process by id (the server under test, each of nginx's processes...).
    Pid(u32),
}

/// Total CPU time of every live thread of `proc`, or `None` where `/proc` is unavailable (not
/// Linux) or the process is gone.
pub fn cpu_time(proc: Proc) -> Option<Duration> {
    let dir = match proc {
        Proc::SelfProcess => "/proc/self/task".to_owned(),
        Proc::Pid(pid) => format!("/proc/{pid}/task"),
    };
    let entries = std::fs::read_dir(Path::new(&dir)).ok()?;
    let mut total = 0u64;
    for entry in entries.flatten() {
        // A thread may exit between listing and reading: skip it.
        if let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat"))
            && let Some(ns) = parse_schedstat(&text)
        {
            total = total.saturating_add(ns);
        }
    }
    Some(Duration::from_nanos(total))
}

/// [`cpu_time`] of each process, in order (`None` for those that cannot be read).
pub fn cpu_times(procs: &[Proc]) -> Vec<Option<Duration>> {
    procs.iter().map(|p| cpu_time(*p)).collect()
}

/// CPU time used between two [`cpu_times`] samples by the processes alive at both; `None` when
/// none was. A helper process that exits during the window (nginx's cache loader does) drops
/// out instead of voiding the figure.
pub fn cpu_delta(before: &[Option<Duration>], after: &[Option<Duration>]) -> Option<Duration> {
    before
        .iter()
        .zip(after)
        .filter_map(|(b, a)| Some(a.as_ref()?.saturating_sub(*b.as_ref()?)))
        .reduce(|x, y| x + y)
}

/// Busy and total time of the whole machine, in `/proc/stat` ticks, and the number of CPUs:
/// with the processes' own use, tells how much of the machine something else was using.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineTicks {
    /// Ticks running tasks (user, nice, system) or stolen by the hypervisor, all CPUs together.
    pub busy: u64,
    /// All ticks, all CPUs together.
    pub total: u64,
    /// CPUs listed.
    pub cpus: u32,
}

/// Reads `/proc/stat`; `None` where it is unavailable.
pub fn machine_ticks() -> Option<MachineTicks> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Parses the aggregate `cpu` line and counts the `cpuN` lines of `/proc/stat`.
fn parse_proc_stat(text: &str) -> Option<MachineTicks> {
    let mut lines = text.lines();
    let mut fields = lines.next()?.split_ascii_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let ticks: Vec<u64> = fields.map(str::parse).collect::<Result<_, _>>().ok()?;
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
    // counted in user, so only the first eight make up the total. Busy is user + nice + system
    // + steal: interrupt and softirq time is left out because on loopback it is mostly the
    // benchmark's own packets, which no process is charged for.
    let total: u64 = ticks.iter().take(8).sum();
    let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let busy = field(0) + field(1) + field(2) + field(7);
    let cpus = lines
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    ticks.get(3)?;
    Some(MachineTicks {
        busy,
        total,
        cpus: u32::try_from(cpus).ok()?,
    })
}

/// Machine-wide CPU use between two samples, in percent of one core (up to 100 × CPUs).
pub fn machine_percent(before: Option<MachineTicks>, after: Option<MachineTicks>) -> Option<f64> {
    let (before, after) = (before?, after?);
    let total = after.total.checked_sub(before.total).filter(|t| *t > 0)?;
    let busy = after.busy.saturating_sub(before.busy);
    Some(busy as f64 / total as f64 * f64::from(after.cpus) * 100.0)
}

/// The first field of a `schedstat` line: time spent on the CPU, in nanoseconds.
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// CPU use between two samples as a percentage of one core over `wall`.
pub fn percent(before: Option<Duration>, after: Option<Duration>, wall: Duration) -> Option<f64> {
    let (before, after) = (before?, after?);
    if wall.is_zero() {
        return None;
    }
    Some(after.saturating_sub(before).as_secs_f64() / wall.as_secs_f64() * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_first_schedstat_field() {
        assert_eq!(parse_schedstat("123456789 2345 67\n"), Some(123_456_789));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
    }

    #[test]
    fn parses_proc_stat() {
        let text = "cpu  100 5 50 800 20 1 2 3 7 0\ncpu0 50 0 25 400 10 0 1 1 0 0\n\
                    cpu1 50 5 25 400 10 1 1 2 0 0\nintr 1 2 3\ncpufreq 1\n";
        assert_eq!(
            parse_proc_stat(text),
            Some(MachineTicks {
                busy: 158,
                total: 981,
                cpus: 2
            })
        );
        assert_eq!(parse_proc_stat("intr 1 2\n"), None);
        assert_eq!(parse_proc_stat("cpu 1 2\n"), None);
        assert_eq!(parse_proc_stat(""), None);
    }

    #[test]
    fn machine_percent_scales_by_cpus() {
        let t = |busy, total| {
            Some(MachineTicks {
                busy,
                total,
                cpus: 2,
            })
        };
        // 150 of 200 ticks busy on 2 CPUs: one and a half cores.
        assert_eq!(machine_percent(t(0, 0), t(150, 200)), Some(150.0));
        assert_eq!(machine_percent(t(10, 100), t(10, 100)), None);
        assert_eq!(machine_percent(None, t(1, 1)), None);
    }

    #[test]
    fn delta_skips_processes_missing_at_either_end() {
        let s = |n| Some(Duration::from_secs(n));
        assert_eq!(cpu_delta(&[s(1), s(10)], &[s(3), s(15)]), s(7));
        // The second process exited during the window; the third started late.
        assert_eq!(cpu_delta(&[s(1), s(10), None], &[s(3), None, s(4)]), s(2));
        assert_eq!(cpu_delta(&[None], &[s(3)]), None);
        assert_eq!(cpu_delta(&[], &[]), None);
    }

    #[test]
    fn percent_of_one_core() {
        let s = Duration::from_secs;
        assert_eq!(percent(Some(s(1)), Some(s(6)), s(10)), Some(50.0));
        assert_eq!(percent(Some(s(1)), Some(s(21)), s(10)), Some(200.0));
        assert_eq!(percent(None, Some(s(1)), s(10)), None);
        assert_eq!(percent(Some(s(1)), Some(s(2)), Duration::ZERO), None);
        // A counter that went backwards (a thread exited) clamps at zero.
        assert_eq!(percent(Some(s(5)), Some(s(4)), s(1)), Some(0.0));
    }

    #[test]
    fn reads_its_own_cpu_time_on_linux() {
        if !Path::new("/proc/self/task").exists() {
            return;
        }
        let before = cpu_time(Proc::SelfProcess).unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = cpu_time(Proc::SelfProcess).unwrap();
        assert!(after > before, "{before:?} -> {after:?}");
        assert_eq!(cpu_time(Proc::Pid(u32::MAX)), None);
        let both = cpu_times(&[Proc::SelfProcess, Proc::Pid(u32::MAX)]);
        assert!(both[0].is_some() && both[1].is_none(), "{both:?}");
        let m = machine_ticks().unwrap();
        assert!(m.cpus >= 1 && m.busy <= m.total, "{m:?}");
    }
}
