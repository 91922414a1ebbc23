//! Benchmarks, each against a reference measured in the same run:
//! - composefs image writing for `cs9-x86_64-developer.dump.gz` (64k entries): ours
//!   against composefs-rs 0.9.4 (`mkfs_erofs_versioned(V0)` of `dumpfile_to_filesystem`),
//!   time and peak memory (VmHWM of a child process per writer);
//! - fs-verity digest throughput against `openssl dgst -sha256` over the same bytes,
//!   on one core and on all cores.
//!
//! Run with `cargo run --release -p ostree-composefs-bench` (or `make bench`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ostree_boot::composefs::{dump, writer};
use ostree_boot::fsverity::digest;
use sha2::{Digest, Sha256};

mod cpu;
use cpu::Cpu;

const DUMP: &str = "cs9-x86_64-developer.dump.gz";

fn vectors_dir() -> PathBuf {
    ostree_boot_test_support::vectors::composefs_dir()
}

fn load_dump() -> Vec<u8> {
    ostree_boot_test_support::vectors::load_composefs(DUMP)
}

/// The dump with ostree's `xx/<checksum>.file` payloads cut to `xx/<checksum>`:
/// composefs-rs can only express payloads that are object pathnames, so both writers
/// are timed on this same tree.
fn same_tree_for_both(text: &[u8]) -> String {
    String::from_utf8_lossy(text).replace(".file ", " ")
}

/// Median of `n` runs.
fn median<T>(n: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(n);
    let mut last = None;
    for _ in 0..n {
        let t = Instant::now();
        let r = f();
        times.push(t.elapsed());
        last = Some(r);
    }
    times.sort();
    (times[n / 2], last.expect("n > 0"))
}

fn best<T>(n: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// User + system CPU seconds of this process (from /proc/self/stat, 10 ms ticks): a
/// figure that, unlike wall time, does not grow when other processes load the machine.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

type RsTree = composefs::erofs::writer::ValidatedFileSystem<composefs::fsverity::Sha256HashValue>;

fn rs_tree(text: &str) -> Result<RsTree, String> {
    let fs =
        composefs::dumpfile::dumpfile_to_filesystem::<composefs::fsverity::Sha256HashValue>(text)
            .map_err(|e| format!("{e:#}"))?;
    composefs::erofs::writer::ValidatedFileSystem::new(fs).map_err(|e| format!("{e:#}"))
}

/// Child mode: one writer from dump text to image, then report peak memory.
fn child(which: &str) {
    let text = load_dump();
    let len = match which {
        "baseline" => text.len(),
        "ours" => {
            let tree = dump::parse(&text, false).expect("parse");
            drop(text);
            writer::write_image(&tree, &writer::WriteOptions::default())
                .expect("write")
                .len()
        }
        "ours-same" => {
            let s = same_tree_for_both(&text);
            drop(text);
            let tree = dump::parse(s.as_bytes(), false).expect("parse");
            drop(s);
            writer::write_image(&tree, &writer::WriteOptions::default())
                .expect("write")
                .len()
        }
        "composefs-rs" => {
            let s = same_tree_for_both(&text);
            drop(text);
            let vfs = rs_tree(&s).expect("composefs-rs parse");
            drop(s);
            composefs::erofs::writer::mkfs_erofs_versioned(
                &vfs,
                composefs::erofs::format::FormatVersion::V0,
            )
            .len()
        }
        other => panic!("unknown child {other}"),
    };
    println!("{} {} {}", vm_hwm_kb(), len, cpu_seconds());
}

/// Peak memory (kB) and CPU seconds of a child process running one writer.
fn child_stats(which: &str) -> Option<(u64, f64)> {
    let out = Command::new(std::env::current_exe().ok()?)
        .args(["--child", which])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "child {which} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let f: Vec<&str> = s.split_whitespace().collect();
    Some((f.first()?.parse().ok()?, f.get(2)?.parse().ok()?))
}

fn bench_writer() {
    println!("== composefs image writing: {DUMP}");
    let text = load_dump();
    let want =
        std::fs::read_to_string(vectors_dir().join(format!("{DUMP}.sha256"))).unwrap_or_default();
    let want = want.split_whitespace().next().unwrap_or("").to_string();

    let (t_parse, tree) = median(3, || dump::parse(&text, false).expect("parse"));
    let opts = writer::WriteOptions::default();
    let (t_write, img) = median(7, || writer::write_image(&tree, &opts).expect("write"));
    let ours_sha = hex::encode(Sha256::digest(&img));
    println!(
        "ours:         parse {:8.1} ms  write {:8.1} ms  total {:8.1} ms  image {} bytes  identical to upstream mkcomposefs: {}",
        ms(t_parse),
        ms(t_write),
        ms(t_parse + t_write),
        img.len(),
        if ours_sha == want { "yes" } else { "NO" }
    );
    drop(tree);

    // The same tree for both writers (see same_tree_for_both).
    let s = same_tree_for_both(&text);
    let (t_parse, tree) = median(3, || dump::parse(s.as_bytes(), false).expect("parse"));
    let (t_write, img) = median(7, || writer::write_image(&tree, &opts).expect("write"));
    let ours_sha = hex::encode(Sha256::digest(&img));
    drop(tree);
    println!(
        "ours (payloads without .file):  parse {:8.1} ms  write {:8.1} ms  total {:8.1} ms",
        ms(t_parse),
        ms(t_write),
        ms(t_parse + t_write)
    );
    let (t_rs_parse, vfs) = median(3, || rs_tree(&s));
    match vfs {
        Err(e) => println!("composefs-rs: cannot read the dump: {e}"),
        Ok(vfs) => {
            let (t_rs_write, rimg) = median(7, || {
                composefs::erofs::writer::mkfs_erofs_versioned(
                    &vfs,
                    composefs::erofs::format::FormatVersion::V0,
                )
            });
            let rs_sha = hex::encode(Sha256::digest(&rimg));
            println!(
                "composefs-rs (same tree):       parse {:8.1} ms  write {:8.1} ms  total {:8.1} ms  image {} bytes  identical to ours: {}",
                ms(t_rs_parse),
                ms(t_rs_write),
                ms(t_rs_parse + t_rs_write),
                rimg.len(),
                if rs_sha == ours_sha { "yes" } else { "no" }
            );
            println!(
                "ratio composefs-rs/ours (higher is better for ours): write {:.2}x  parse+write {:.2}x",
                t_rs_write.as_secs_f64() / t_write.as_secs_f64(),
                (t_rs_parse + t_rs_write).as_secs_f64() / (t_parse + t_write).as_secs_f64()
            );
        }
    }
    let base = child_stats("baseline");
    let ours = child_stats("ours-same");
    let rs = child_stats("composefs-rs");
    let cpu = |v: Option<(u64, f64)>| {
        v.map(|(_, c)| format!("{:.0} ms", c * 1000.0))
            .unwrap_or_else(|| "n/a".into())
    };
    println!(
        "CPU time of a whole run (gunzip + parse + write, child process): ours {}  composefs-rs {}  (gunzip alone: {})",
        cpu(ours),
        cpu(rs),
        cpu(base)
    );
    if let (Some((_, o)), Some((_, r))) = (ours, rs) {
        println!("ratio composefs-rs/ours CPU time: {:.2}x", r / o.max(0.01));
    }
    let (base, ours, rs) = (base.map(|v| v.0), ours.map(|v| v.0), rs.map(|v| v.0));
    let mb = |v: Option<u64>| {
        v.map(|k| format!("{:.1} MB", k as f64 / 1024.0))
            .unwrap_or_else(|| "n/a".into())
    };
    println!(
        "peak memory (VmHWM, child process, dump text included): ours {}  composefs-rs {}  (reading the dump alone: {})",
        mb(ours),
        mb(rs),
        mb(base)
    );
    if let (Some(o), Some(r)) = (ours, rs) {
        println!(
            "ratio composefs-rs/ours peak memory: {:.2}x",
            r as f64 / o as f64
        );
    }
}

fn fill(buf: &mut [u8], seed: u64) {
    let mut s = seed | 1;
    for c in buf.chunks_mut(8) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let b = s.to_le_bytes();
        c.copy_from_slice(&b[..c.len()]);
    }
}

fn openssl_time(files: &[PathBuf]) -> Option<Duration> {
    let t = Instant::now();
    let children: Vec<_> = files
        .iter()
        .map(|f| {
            Command::new("openssl")
                .args(["dgst", "-sha256"])
                .arg(f)
                .stdout(std::process::Stdio::null())
                .spawn()
        })
        .collect::<Result<_, _>>()
        .ok()?;
    for mut c in children {
        if !c.wait().ok()?.success() {
            return None;
        }
    }
    Some(t.elapsed())
}

fn bench_digest(dir: &Path) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let total: usize = std::env::var("BENCH_DIGEST_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
        << 20;
    println!(
        "== fs-verity digest throughput: {} MiB, {cores} cores",
        total >> 20
    );
    let gbs = |d: Duration| total as f64 / d.as_secs_f64() / 1e9;

    let mut data = vec![0u8; total];
    fill(&mut data, 42);
    let one = dir.join("all.bin");
    std::fs::write(&one, &data).expect("write test data");
    let per = total / cores;
    let parts: Vec<PathBuf> = (0..cores)
        .map(|i| {
            let p = dir.join(format!("part{i}.bin"));
            std::fs::write(&p, &data[i * per..(i + 1) * per]).expect("write test data");
            p
        })
        .collect();

    // Runs interleave ours and OpenSSL and keep the best of each, so that load from
    // other processes hits both sides alike.
    let rounds = 5;
    let mem = best(rounds, || digest::digest(&data));
    drop(data);
    bench_digest_cpu(&one, rounds);
    let (mut file1, mut ossl1, mut filen, mut ossln) = (
        Duration::MAX,
        None::<Duration>,
        Duration::MAX,
        None::<Duration>,
    );
    for _ in 0..rounds {
        file1 = file1.min(best(1, || digest::digest_file(&one).expect("digest")));
        if let Some(t) = openssl_time(std::slice::from_ref(&one)) {
            ossl1 = Some(ossl1.map_or(t, |o| o.min(t)));
        }
        filen = filen.min(best(1, || digest::digest_files_parallel(&parts)));
        if let Some(t) = openssl_time(&parts) {
            ossln = Some(ossln.map_or(t, |o| o.min(t)));
        }
    }
    println!("ours, 1 core, in memory:     {:6.2} GB/s", gbs(mem));
    println!("ours, 1 core, from file:     {:6.2} GB/s", gbs(file1));
    match ossl1 {
        Some(o) => println!(
            "openssl dgst -sha256, 1 core: {:6.2} GB/s   ratio ours/openssl {:.2}",
            gbs(o),
            o.as_secs_f64() / file1.as_secs_f64()
        ),
        None => println!("openssl dgst -sha256: not available"),
    }
    println!(
        "ours, {cores} cores, files:       {:6.2} GB/s   scaling {:.2}x of 1 core",
        gbs(filen),
        file1.as_secs_f64() / filen.as_secs_f64()
    );
    // Wall-time scaling needs idle cores; the CPU time the same bytes cost on N threads
    // against one does not, and is 1.00 when nothing is lost to the threading.
    let (mut c1, mut cn) = (None, None);
    for _ in 0..rounds {
        let before = cpu::process();
        std::hint::black_box(digest::digest_files_parallel_with(&parts, 1));
        c1 = min_cpu(c1, cpu::process() - before);
        let before = cpu::process();
        std::hint::black_box(digest::digest_files_parallel(&parts));
        cn = min_cpu(cn, cpu::process() - before);
    }
    if let (Some(c1), Some(cn)) = (c1, cn) {
        println!(
            "CPU time on {cores} threads / on 1 thread, same files: {:.2} (1.00 = linear scaling)",
            cn.total() / c1.total()
        );
    }
    if let Some(o) = ossln {
        println!(
            "openssl, {cores} processes:       {:6.2} GB/s   ratio ours/openssl {:.2}",
            gbs(o),
            o.as_secs_f64() / filen.as_secs_f64()
        );
    }
}

/// CPU time of this thread hashing `path` with `read` (the library's digest_file, or
/// reads of a given size into the streaming hasher).
fn digest_cpu(path: &Path, buf: Option<usize>) -> Cpu {
    let before = cpu::thread();
    let d = match buf {
        None => digest::digest_file(path).expect("digest"),
        Some(size) => {
            let mut f = std::fs::File::open(path).expect("open");
            let mut h = digest::FsVerityHasher::new();
            let mut b = vec![0u8; size];
            loop {
                let n = f.read(&mut b).expect("read");
                if n == 0 {
                    break;
                }
                h.update(&b[..n]);
            }
            h.finalize()
        }
    };
    std::hint::black_box(d);
    cpu::thread() - before
}

/// CPU time of `openssl dgst -sha256 path` (user and system, from its rusage).
fn openssl_cpu(path: &Path) -> Option<Cpu> {
    let before = cpu::children();
    let ok = Command::new("openssl")
        .args(["dgst", "-sha256"])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .status()
        .ok()?
        .success();
    ok.then(|| cpu::children() - before)
}

fn min_cpu(a: Option<Cpu>, b: Cpu) -> Option<Cpu> {
    Some(match a {
        Some(a) if a.total() <= b.total() => a,
        _ => b,
    })
}

/// User and system CPU time of one file's digest against `openssl dgst -sha256` on the
/// same file, in the page cache: both read it through read(2), so the system time is
/// the cost of the copies, which the read size decides.
fn bench_digest_cpu(file: &Path, rounds: usize) {
    let mib = std::fs::metadata(file).map(|m| m.len() >> 20).unwrap_or(0);
    println!("== fs-verity digest CPU time (getrusage), one {mib} MiB file in the page cache");
    let sweep = [64 << 10, 128 << 10, 256 << 10, 1 << 20, 4 << 20];
    let (mut ossl, mut ours) = (None, None);
    let mut by_buf: Vec<Option<Cpu>> = vec![None; sweep.len()];
    // Interleaved and best-of, as for wall time.
    for _ in 0..rounds {
        if let Some(c) = openssl_cpu(file) {
            ossl = min_cpu(ossl, c);
        }
        ours = min_cpu(ours, digest_cpu(file, None));
        for (i, &b) in sweep.iter().enumerate() {
            by_buf[i] = min_cpu(by_buf[i], digest_cpu(file, Some(b)));
        }
    }
    let show = |c: Cpu| {
        format!(
            "user {:6.3} s  sys {:6.3} s  total {:6.3} s",
            c.user,
            c.sys,
            c.total()
        )
    };
    let ours = ours.expect("rounds > 0");
    println!(
        "ours (digest_file, {} KiB reads): {}",
        digest::READ_BUFFER >> 10,
        show(ours)
    );
    match ossl {
        Some(o) => {
            println!("openssl dgst -sha256:           {}", show(o));
            println!(
                "ratio ours/openssl CPU time: {:.2} (user {:.2}, sys {:.2}; target <= 1.00)",
                ours.total() / o.total(),
                ours.user / o.user.max(1e-6),
                ours.sys / o.sys.max(1e-6)
            );
        }
        None => println!("openssl dgst -sha256: not available"),
    }
    for (b, c) in sweep.iter().zip(&by_buf) {
        let c = c.expect("rounds > 0");
        let ratio = ossl
            .map(|o| format!("  ratio/openssl {:.2}", c.total() / o.total()))
            .unwrap_or_default();
        println!("  read size {:5} KiB: {}{ratio}", b >> 10, show(c));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--child" {
        child(&args[2]);
        return;
    }
    let only = args.get(1).map(String::as_str);
    if only.is_none() || only == Some("writer") {
        bench_writer();
    }
    if only.is_none() || only == Some("digest") {
        let dir =
            std::env::temp_dir().join(format!("ostree-composefs-bench.{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        bench_digest(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
