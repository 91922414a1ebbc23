//! `ostree-prepare-root --help`: the usage on stdout, exit 0 (not "unknown option").

use std::process::Command;

#[test]
fn help_prints_usage_and_succeeds() {
    for arg in ["--help", "-h"] {
        let o = Command::new(env!("CARGO_BIN_EXE_ostree-prepare-root"))
            .arg(arg)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{arg}: {}", o.status);
        assert!(
            o.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        for want in [
            "usage: ostree-prepare-root SYSROOT [KERNEL_CMDLINE]",
            "--print-config",
            "--check",
            "ostree-prepare-root --help",
        ] {
            assert!(out.contains(want), "{arg}: no {want:?} in\n{out}");
        }
    }
}
