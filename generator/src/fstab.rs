//! Just enough of `/etc/fstab` to know which mount points it claims.
//!
//! `systemd-fstab-generator` writes a unit for every fstab entry into the same
//! output directory, so a `/var` or `/boot` listed there must not get a second unit
//! from us. The parsing follows glibc's `getmntent()`: fields separated by blanks,
//! lines whose first non-blank character is `#` ignored, and the octal escapes
//! `\040` (space), `\011` (tab), `\012` (newline) and `\134` (backslash) decoded.
//! Mount points are compared after collapsing repeated and trailing slashes, like
//! ostree's `path_kill_slashes()`.

/// The normalised mount points of every entry, in file order.
pub fn mount_points(contents: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in contents.lines() {
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut fields = trimmed.split([' ', '\t']).filter(|f| !f.is_empty());
        let (Some(_source), Some(dir)) = (fields.next(), fields.next()) else {
            continue;
        };
        out.push(normalize(&decode(dir)));
    }
    out
}

/// Whether `contents` has an entry whose mount point is `path` (already normalised).
pub fn has_mount_point(contents: &str, path: &str) -> bool {
    mount_points(contents).iter().any(|p| p == path)
}

fn decode(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let decoded = match after.get(..3) {
            Some("040") => Some(' '),
            Some("011") => Some('\t'),
            Some("012") => Some('\n'),
            Some("134") => Some('\\'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[3..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Collapses runs of `/` and drops a trailing `/` (but keeps `/` itself).
pub fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut prev_slash = false;
    for c in path.chars() {
        if c == '/' {
            if !prev_slash {
                out.push(c);
            }
            prev_slash = true;
        } else {
            out.push(c);
            prev_slash = false;
        }
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mount_points() {
        let fstab = "# comment\n\n  # indented comment\nUUID=1 / ext4 defaults 1 1\n\
                     LABEL=v\t//var//\txfs defaults 0 2\n/dev/sda1 /boot\\040efi vfat ro 0 0\nlonely\n";
        assert_eq!(mount_points(fstab), vec!["/", "/var", "/boot efi"]);
        assert!(has_mount_point(fstab, "/var"));
        assert!(!has_mount_point(fstab, "/boot"));
    }

    #[test]
    fn commented_or_prefixed_entries_do_not_count() {
        let fstab = "#UUID=1 /var ext4 defaults 0 0\nUUID=2 /var/lib ext4 defaults 0 0\n";
        assert!(!has_mount_point(fstab, "/var"));
    }

    #[test]
    fn decodes_escapes() {
        assert_eq!(decode("/a\\040b\\134c\\011d\\xyz\\"), "/a b\\c\td\\xyz\\");
    }

    #[test]
    fn arbitrary_text_never_panics() {
        // Escapes cut at every position, multi-byte characters next to backslashes.
        let pieces = [
            "\\", "\\0", "\\04", "\\040", "é", "/", " ", "\t", "#", "\n", "ü\\1",
        ];
        let mut seed = 0x2545_f491_u32;
        for _ in 0..5000 {
            let mut s = String::new();
            for _ in 0..(seed % 12) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                s.push_str(pieces[(seed % pieces.len() as u32) as usize]);
            }
            let _ = mount_points(&s);
            let _ = decode(&s);
        }
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize("//var///"), "/var");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("///"), "/");
    }
}
