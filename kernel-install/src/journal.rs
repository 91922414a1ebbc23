//! Structured journal entries with libostree's MESSAGE_IDs (`ostree-sysroot-deploy.c`),
//! so `journalctl MESSAGE_ID=…` finds our deployments as it finds ostree's.
//!
//! Sent with systemd's native protocol (one datagram to /run/systemd/journal/socket,
//! `KEY=value` lines, the length-prefixed form for values holding a newline), the way
//! `sd_journal_send` does for small entries. Without a journal the message goes to
//! stdout instead; a failed send is never an error of the deployment.

use std::os::unix::net::UnixDatagram;

pub(crate) const SOCKET: &str = "/run/systemd/journal/socket";

/// `OSTREE_CONFIGMERGE_ID`: the /etc merge of a new deployment.
pub(crate) const CONFIGMERGE_ID: &str = "d3863baec13e4449ab0384684a8af3a7";
/// `OSTREE_DEPLOYMENT_COMPLETE_ID`: a new boot configuration is in place.
pub(crate) const DEPLOYMENT_COMPLETE_ID: &str = "dd440e3e549083b63d0efc7dc15255f1";
/// `OSTREE_DEPLOYMENT_FINALIZING_ID`: finalization of a staged deployment starts.
pub(crate) const DEPLOYMENT_FINALIZING_ID: &str = "e8646cd63dff4625b77909a8e7a40994";

const LOG_INFO: u8 = 6;

fn field(out: &mut Vec<u8>, key: &str, value: &str) {
    if value.contains('\n') {
        out.extend_from_slice(key.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    } else {
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
}

/// The datagram for one entry.
pub(crate) fn encode(
    message_id: Option<&str>,
    message: &str,
    fields: &[(&str, String)],
) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(id) = message_id {
        field(&mut out, "MESSAGE_ID", id);
    }
    field(&mut out, "MESSAGE", message);
    field(&mut out, "PRIORITY", &LOG_INFO.to_string());
    field(&mut out, "SYSLOG_IDENTIFIER", "ostree-composefs");
    for (k, v) in fields {
        field(&mut out, k, v);
    }
    out
}

fn deliver(datagram: &[u8]) -> bool {
    let Ok(s) = UnixDatagram::unbound() else {
        return false;
    };
    s.send_to(datagram, SOCKET).is_ok()
}

/// An entry with a MESSAGE_ID and fields.
pub(crate) fn send(message_id: &str, message: &str, fields: &[(&str, String)]) {
    if !deliver(&encode(Some(message_id), message, fields)) {
        println!("{message}");
    }
}

/// As [`send`], without the stdout fallback (for messages the caller prints anyway).
pub(crate) fn send_quiet(message_id: &str, message: &str, fields: &[(&str, String)]) {
    deliver(&encode(Some(message_id), message, fields));
}

/// A plain informational entry (`ot_journal_print (LOG_INFO, …)`).
pub(crate) fn print(message: &str) {
    if !deliver(&encode(None, message, &[])) {
        println!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_format() {
        let d = encode(
            Some(CONFIGMERGE_ID),
            "Copying /etc changes: 1 modified, 0 removed, 2 added",
            &[("ETC_N_MODIFIED", "1".into()), ("X", "a\nb".into())],
        );
        let want = b"MESSAGE_ID=d3863baec13e4449ab0384684a8af3a7\nMESSAGE=Copying /etc changes: 1 modified, 0 removed, 2 added\nPRIORITY=6\nSYSLOG_IDENTIFIER=ostree-composefs\nETC_N_MODIFIED=1\nX\n\x03\0\0\0\0\0\0\0a\nb\n";
        assert_eq!(d, want.to_vec());
    }
}
