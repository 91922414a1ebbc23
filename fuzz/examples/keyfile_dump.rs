//! Prints how our GKeyFile reader reads each file given, in the line format
//! `glib-keyfile-diff.py` compares with libglib's reading.

use std::path::Path;

use ostree_boot::keyfile::KeyFile;

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    for p in std::env::args().skip(1) {
        let Ok(data) = std::fs::read(&p) else {
            continue;
        };
        // ostree reads these files as UTF-8 and GLib stops at a NUL: compare the rest.
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        if text.contains('\0') {
            continue;
        }
        match KeyFile::parse(text, Path::new(&p)) {
            Err(_) => println!("{p}\tERR"),
            Ok(kf) => {
                let mut items = vec![];
                for g in kf.groups() {
                    items.push(format!("G{}", hex(g)));
                    // GLib drops translations for other locales; they are not compared.
                    for k in kf.keys(g).into_iter().filter(|k| !k.contains('[')) {
                        let v = kf.get(g, k).unwrap_or_default();
                        items.push(format!("{}:{}:{}", hex(g), hex(k), hex(v)));
                        let b = match kf.get_bool(g, k) {
                            Ok(Some(true)) => "1",
                            Ok(Some(false)) => "0",
                            _ => "E",
                        };
                        items.push(format!("B{}:{}:{b}", hex(g), hex(k)));
                    }
                }
                items.sort();
                items.dedup();
                println!("{p}\tOK\t{}", items.join(","));
            }
        }
    }
}
