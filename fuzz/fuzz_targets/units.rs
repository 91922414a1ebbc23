//! Random kernel command lines through the generator's unit writer: every word, and
//! the `var.mount` an accepted `ostree=` yields, must parse back (with systemd's line
//! rules) to exactly the values written, and the writer refuses only what systemd could
//! not read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ostree_boot::cmdline::Cmdline;
use ostree_boot::deployment::Bootlink;
use ostree_system_generator::unit_file::{UnitFile, parse};
use ostree_system_generator::units::var_mount;

/// What the writer may refuse: what systemd's line reader would not give back as is.
fn unrepresentable(v: &str) -> bool {
    v.chars().any(char::is_control)
        || v.starts_with([' ', '\t'])
        || v.ends_with([' ', '\t', '\\'])
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let c = Cmdline::parse(&text);
    for arg in c.args() {
        let mut u = UnitFile::new(None).unwrap();
        u.section("Mount");
        match u.set("What", arg) {
            Ok(_) => {
                let s = parse(&u.finish()).unwrap_or_else(|e| panic!("{arg:?}: {e}"));
                assert_eq!(s.len(), 1, "{arg:?}: {s:?}");
                assert_eq!((s[0].key.as_str(), s[0].value.as_str()), ("What", arg.as_str()));
            }
            Err(e) => assert!(unrepresentable(arg), "{arg:?} refused: {e}"),
        }
    }
    let Ok(Some(t)) = c.ostree_target() else {
        return;
    };
    assert!(!t.path.chars().any(char::is_control), "{:?}", t.path);
    assert!(
        t.path[1..].split('/').all(|p| !matches!(p, "" | "." | "..")),
        "{:?}",
        t.path
    );
    if t.is_aboot {
        return;
    }
    let Ok(b) = Bootlink::parse(&t.path) else {
        return;
    };
    let Ok(unit) = var_mount(&b.stateroot) else {
        return;
    };
    let s = parse(&unit).unwrap_or_else(|e| panic!("{unit:?}: {e}"));
    let get = |sec: &str, key: &str| {
        let v: Vec<&str> = s
            .iter()
            .filter(|x| x.section == sec && x.key == key)
            .map(|x| x.value.as_str())
            .collect();
        v
    };
    let what = format!("/sysroot/ostree/deploy/{}/var", b.stateroot);
    assert_eq!(get("Mount", "What"), vec![what.as_str()], "{unit:?}");
    assert_eq!(get("Mount", "Where"), vec!["/var"], "{unit:?}");
    assert_eq!(get("Mount", "Options"), vec!["bind,slave,shared"], "{unit:?}");
    assert_eq!(s.len(), 8, "no other setting: {unit:?}");
});
