//! What may go into a Boot Loader Spec entry. An entry is `key value` lines, so a line
//! end in any value (a commit's `version` that ends up in the title, a kernel version
//! in the `linux` path, kernel arguments) would add lines of its own, such as
//! `options init=/bin/sh`. ostree writes such values as they come; we refuse them,
//! naming the field and the commit.

use crate::layout::BootEntry;

/// A value that cannot go into a boot entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("boot entry for commit {commit}: {field} {value:?} refused: {reason}")]
pub struct EntryFieldError {
    pub commit: String,
    pub field: String,
    pub value: String,
    pub reason: &'static str,
}

/// Fields whose value is a path on the boot partition.
const PATH_FIELDS: [&str; 3] = ["linux", "initrd", "devicetree"];

/// Checks one value for `field` of the entry of `commit`: no control characters
/// anywhere (a line end would start a new line of the entry; the others have no
/// business in a title or a path); paths absolute, without empty, `.` or `..`
/// components.
pub fn check_field(field: &str, value: &str, commit: &str) -> Result<(), EntryFieldError> {
    let bad = |reason| {
        Err(EntryFieldError {
            commit: commit.to_string(),
            field: field.to_string(),
            value: value.to_string(),
            reason,
        })
    };
    if value.chars().any(char::is_control) {
        return bad("it contains a control character (a line end would add lines to the entry)");
    }
    if PATH_FIELDS.contains(&field) {
        let Some(rest) = value.strip_prefix('/') else {
            return bad("not an absolute path");
        };
        if rest.split('/').any(|c| matches!(c, "" | "." | "..")) {
            return bad("a path with an empty, '.' or '..' component");
        }
    }
    Ok(())
}

/// Checks every field ostree writes (`title`, `version`, `options`, `devicetree`,
/// `linux`, `initrd` and the overlay initrds) of `entry`, the entry of `commit`.
pub fn check_entry(entry: &BootEntry, commit: &str) -> Result<(), EntryFieldError> {
    for field in [
        "title",
        "version",
        "options",
        "devicetree",
        "linux",
        "initrd",
    ] {
        if let Some(v) = entry.get(field) {
            check_field(field, v, commit)?;
        }
    }
    for v in entry.overlay_initrds() {
        check_field("initrd", v, commit)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "0123abcd";

    #[test]
    fn newline_in_any_field_is_refused_naming_field_and_commit() {
        for field in [
            "title",
            "version",
            "options",
            "linux",
            "initrd",
            "devicetree",
        ] {
            let mut e = BootEntry::default();
            e.set(field, "/x/1\noptions init=/bin/sh");
            let err = check_entry(&e, C).unwrap_err();
            assert_eq!(err.field, field);
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("boot entry for commit {C}: {field} ")),
                "{msg}"
            );
            assert!(msg.contains("control character"), "{msg}");
        }
        for v in ["a\rb", "a\0b", "a\u{1b}b", "a\tb", "a\u{85}b"] {
            assert!(check_field("title", v, C).is_err(), "{v:?}");
        }
    }

    #[test]
    fn paths_must_be_plain_absolute_paths() {
        for ok in ["/ostree/os-abc/vmlinuz-6.1.0-13-amd64", "/boot/x"] {
            assert_eq!(check_field("linux", ok, C), Ok(()));
        }
        for bad in ["vmlinuz", "/ostree/../etc/x", "/a//b", "/a/./b", "/a/"] {
            assert!(check_field("linux", bad, C).is_err(), "{bad:?}");
            assert!(check_field("initrd", bad, C).is_err(), "{bad:?}");
        }
        // Titles and options are not paths.
        assert_eq!(
            check_field("title", "Debian GNU/Linux 12 (ostree:0)", C),
            Ok(())
        );
        assert_eq!(check_field("options", "root=/dev/vda2 rw quiet", C), Ok(()));
    }

    #[test]
    fn a_real_entry_passes() {
        let e = BootEntry::parse(
            "title Debian 1.0 (ostree:0)\nversion 2\noptions root=x ostree=/ostree/boot.1/os/c/0\nlinux /ostree/os-c/vmlinuz-6.1\ninitrd /ostree/os-c/initramfs-6.1.img\ninitrd /overlay.img\n",
        );
        assert_eq!(check_entry(&e, C), Ok(()));
    }
}
