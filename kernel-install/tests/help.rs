//! `--help` of `ostree-composefs` and of each of its subcommands: usage on stdout, exit 0.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_ostree-composefs"))
        .args(args)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{args:?}: {}\n{err}", o.status);
    assert!(out.contains("Usage: ostree-composefs"), "{args:?}: {out}");
    assert!(err.is_empty(), "{args:?}: {err}");
    out.into_owned()
}

#[test]
fn help_on_the_binary_and_every_subcommand() {
    let top = help(&["--help"]);
    assert_eq!(top, help(&["-h"]));
    // The subcommands are the lines of the "Commands:" section, so a new one is covered
    // without touching this test.
    let subs: Vec<&str> = top
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| *s != "help")
        .collect();
    for want in ["mkcomposefs", "deploy", "kernel-install", "sign", "verify"] {
        assert!(subs.contains(&want), "{want} missing from {subs:?}");
    }
    for s in subs {
        let out = help(&[s, "--help"]);
        assert!(
            out.contains(&format!("Usage: ostree-composefs {s}")),
            "{s}: {out}"
        );
    }
}
