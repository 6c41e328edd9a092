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
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
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
    }

    #[test]
    fn stat_line_parses_with_spaces_in_the_name() {
        let line = "42 (a b) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0";
        assert_eq!(ticks_of_stat(line), Some(Duration::from_millis(3000)));
    }
}
