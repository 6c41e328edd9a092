//! CPU time of threads and memory of this process, from /proc. Thread CPU comes from
//! `schedstat` (nanoseconds, user + system) with `stat` (clock ticks) as the fallback.

use std::time::Duration;

/// The kernel's id of the calling thread (from the /proc/thread-self link, no unsafe needed).
pub fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// CPU time a thread of this process has used so far.
pub fn thread_cpu(tid: u32) -> Option<Duration> {
    task_cpu(&format!("/proc/self/task/{tid}"))
}

/// Time a thread of this process has spent runnable but waiting for a core (schedstat field 2).
pub fn thread_wait(tid: u32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    s.split_whitespace()
        .nth(1)?
        .parse()
        .ok()
        .map(Duration::from_nanos)
}

/// CPU time a whole process has used so far (all threads, user + system).
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    ticks_of_stat(&stat)
}

fn task_cpu(dir: &str) -> Option<Duration> {
    if let Ok(s) = std::fs::read_to_string(format!("{dir}/schedstat")) {
        if let Some(ns) = s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            return Some(Duration::from_nanos(ns));
        }
    }
    ticks_of_stat(&std::fs::read_to_string(format!("{dir}/stat")).ok()?)
}

/// utime + stime of a /proc stat line (fields 14 and 15, after the parenthesised name).
fn ticks_of_stat(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux ABI the project targets.
    Some(Duration::from_millis(ticks * 10))
}

/// Resident set size of this process, bytes.
pub fn rss_bytes() -> u64 {
    status_kb("VmRSS").unwrap_or(0) * 1024
}

fn status_kb(key: &str) -> Option<u64> {
    status_kb_of("/proc/self/status", key)
}

fn status_kb_of(path: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident set size of another process, bytes.
pub fn process_rss_bytes(pid: u32) -> Option<u64> {
    status_kb_of(&format!("/proc/{pid}/status"), "VmRSS").map(|kb| kb * 1024)
}

/// Run-queue wait of all live threads of another process (schedstat field 2 of each task).
pub fn process_wait(pid: u32) -> Option<Duration> {
    process_schedstat_sum(pid, 1)
}

/// CPU time of all live threads of another process, in nanoseconds from each task's schedstat
/// (`/proc/PID/stat` counts 10 ms ticks: too coarse for a few seconds at a low rate). Threads
/// that exited are not counted; the server's threads live as long as it does.
pub fn process_cpu_precise(pid: u32) -> Option<Duration> {
    process_schedstat_sum(pid, 0).or_else(|| process_cpu(pid))
}

fn process_schedstat_sum(pid: u32, field: usize) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = Duration::ZERO;
    let mut any = false;
    for t in tasks.flatten() {
        let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = s.split_whitespace().nth(field).and_then(|v| v.parse().ok()) {
            total += Duration::from_nanos(ns);
            any = true;
        }
    }
    any.then_some(total)
}

/// Sum of run-queue wait of several threads.
pub fn threads_wait(tids: &[u32]) -> Duration {
    tids.iter().filter_map(|t| thread_wait(*t)).sum()
}

/// Sum of CPU time of several threads.
pub fn threads_cpu(tids: &[u32]) -> Duration {
    tids.iter().filter_map(|t| thread_cpu(*t)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_thread_cpu_grows_with_work() {
        let tid = current_tid().expect("tid");
        let a = thread_cpu(tid).expect("cpu");
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let b = thread_cpu(tid).expect("cpu");
        assert!(b > a);
        assert!(rss_bytes() > 0);
        let me = std::process::id();
        assert_eq!(process_rss_bytes(me).map(|r| r > 0), Some(true));
        assert!(process_wait(me).is_some());
        assert!(process_cpu(me).is_some_and(|c| c > Duration::ZERO));
        assert!(process_cpu_precise(me).is_some_and(|c| c >= b));
    }

    #[test]
    fn stat_line_parses_with_spaces_in_the_name() {
        let line = "42 (a b) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0";
        assert_eq!(ticks_of_stat(line), Some(Duration::from_millis(3000)));
    }
}
