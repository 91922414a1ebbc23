//! Key-file parse time against file size: prepare-root.conf and repo/config are read
//! in the initrd, where whoever writes them could otherwise stall the boot with a
//! quadratic parse. Prints the time for 20k and 200k groups (each with a key) and
//! their ratio: linear parsing gives about 10, quadratic about 100. The budget for
//! 200k groups is 0.5 s (GLib's GKeyFile takes a fraction of that). Times are the
//! thread's CPU time (best of a few runs), so other load on a shared machine does not
//! count; the wall-clock time of the same run is printed beside it.
//!
//! `cargo bench -p ostree-boot --bench keyfile`

use std::path::Path;
use std::time::{Duration, Instant};

use ostree_boot::keyfile::KeyFile;

const BUDGET: Duration = Duration::from_millis(500);

fn file(groups: usize) -> String {
    let mut s = String::with_capacity(groups * 24);
    for i in 0..groups {
        s.push_str(&format!("[group{i}]\nkey{i}=value\n"));
    }
    s
}

fn cpu_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// (CPU, wall) of the run with the least CPU time.
fn time(text: &str, runs: usize) -> (Duration, Duration) {
    (0..runs)
        .map(|_| {
            let (c, w) = (cpu_now(), Instant::now());
            let kf = KeyFile::parse(text, Path::new("bench.conf")).expect("parses");
            let d = (cpu_now() - c, w.elapsed());
            assert!(kf.has_group("group0"));
            d
        })
        .min()
        .unwrap()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this once, quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (small, large) = if quick {
        (2_000, 20_000)
    } else {
        (20_000, 200_000)
    };
    let runs = if quick { 1 } else { 5 };
    let (t_small, w_small) = time(&file(small), runs);
    let (t_large, w_large) = time(&file(large), runs);
    let ratio = t_large.as_secs_f64() / t_small.as_secs_f64().max(1e-9);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "keyfile parse, {small} groups: {:.1} ms CPU ({:.1} ms wall)",
        ms(t_small),
        ms(w_small)
    );
    println!(
        "keyfile parse, {large} groups: {:.1} ms CPU ({:.1} ms wall)",
        ms(t_large),
        ms(w_large)
    );
    println!("ratio for 10x the groups: {ratio:.1} (linear ~10, quadratic ~100)");
    if !quick {
        println!(
            "200k groups within the {} ms budget: {}",
            BUDGET.as_millis(),
            if t_large <= BUDGET { "yes" } else { "NO" }
        );
    }
}
