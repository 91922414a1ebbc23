//! `ostree-prepare-root SYSROOT [KERNEL_CMDLINE]` (upstream's usage), and
//! `ostree-prepare-root --check [--sysroot DIR] [--config-root DIR] [--cmdline STRING] [DEPLOYMENT]`.

use std::path::PathBuf;
use std::process::ExitCode;

use ostree_boot::cmdline::Cmdline;
use ostree_prepare_root::{check, run};

const USAGE: &str = "usage: ostree-prepare-root SYSROOT [KERNEL_CMDLINE]
       ostree-prepare-root --check [--sysroot DIR] [--config-root DIR] [--cmdline STRING] [DEPLOYMENT]";

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("ostree-prepare-root: {}", r.args());
        }
    }
    fn flush(&self) {}
}

fn main() -> ExitCode {
    static LOGGER: StderrLogger = StderrLogger;
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Info));
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--check") => check_main(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(a) if a.starts_with('-') => fail(&format!("unknown option {a}\n{USAGE}")),
        Some(sysroot) => {
            if args.len() > 2 {
                return fail(&format!("too many arguments\n{USAGE}"));
            }
            let cmdline = match args.get(1) {
                Some(s) => Cmdline::parse(s),
                None => match Cmdline::from_proc() {
                    Ok(c) => c,
                    Err(e) => return fail(&format!("reading /proc/cmdline: {e}")),
                },
            };
            match run::run(&PathBuf::from(sysroot), &cmdline) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e.0),
            }
        }
        None => fail(USAGE),
    }
}

fn fail(msg: &str) -> ExitCode {
    log::error!("{msg}");
    ExitCode::FAILURE
}

fn check_main(args: &[String]) -> ExitCode {
    let mut sysroot = PathBuf::from("/sysroot");
    let mut config_root = PathBuf::from("/");
    let mut cmdline = None;
    let mut deployment = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let res = match a.as_str() {
            "--sysroot" => value("--sysroot").map(|v| sysroot = v.into()),
            "--config-root" => value("--config-root").map(|v| config_root = v.into()),
            "--cmdline" => value("--cmdline").map(|v| cmdline = Some(Cmdline::parse(&v))),
            s if s.starts_with('-') => Err(format!("unknown option {s}")),
            s if deployment.is_none() => {
                deployment = Some(s.to_string());
                Ok(())
            }
            s => Err(format!("unexpected argument {s}")),
        };
        if let Err(e) = res {
            return fail(&format!("--check: {e}\n{USAGE}"));
        }
    }
    let cmdline = match cmdline {
        Some(c) => c,
        None => match Cmdline::from_proc() {
            Ok(c) => c,
            Err(e) => return fail(&format!("reading /proc/cmdline: {e}")),
        },
    };
    let report = check::check(&check::CheckArgs {
        sysroot,
        config_root,
        cmdline,
        deployment,
    });
    for l in &report.lines {
        println!("{l}");
    }
    if report.would_boot() {
        println!("would boot: yes");
        ExitCode::SUCCESS
    } else {
        println!("would boot: no");
        for f in &report.failures {
            eprintln!("ostree-prepare-root --check: {f}");
        }
        ExitCode::FAILURE
    }
}
