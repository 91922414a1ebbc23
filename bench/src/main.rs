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

const DUMP: &str = "cs9-x86_64-developer.dump.gz";

fn vectors_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("OSTREE_BOOT_VECTORS") {
        return PathBuf::from(d).join("composefs");
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for a in manifest.ancestors() {
        let c = a.join("shared/vectors/composefs");
        if c.is_dir() {
            return c;
        }
    }
    PathBuf::from("/work/shared/vectors/composefs")
}

fn load_dump() -> Vec<u8> {
    let p = vectors_dir().join(DUMP);
    let raw = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .expect("gunzip");
    out
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
        .unwrap_or(512)
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
    if let Some(o) = ossln {
        println!(
            "openssl, {cores} processes:       {:6.2} GB/s   ratio ours/openssl {:.2}",
            gbs(o),
            o.as_secs_f64() / filen.as_secs_f64()
        );
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
