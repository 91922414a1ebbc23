//! Ed25519 commit signatures as ostree makes and checks them.
//!
//! * Public keys: one base64 line each (the `ostree sign --keys-file` format and
//!   prepare-root's `composefs.keypath`).
//! * Secret keys: one base64 line of 64 bytes, seed ‖ public (`ostree sign`'s format).
//! * Signatures: 64 bytes in the commit's detached metadata, key `ostree.sign.ed25519`
//!   (`aay`), over the raw bytes of the `.commit` object as stored.
//!
//! Verification accepts exactly what libsodium's `crypto_sign_verify_detached` accepts:
//! `verify_strict` (canonical `s`, no small-order `R` or `A`) plus a canonical encoding
//! check of the key, which dalek's decoder alone does not make.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
#[cfg(feature = "writer")]
use ed25519_dalek::{Signer, SigningKey};
#[cfg(feature = "writer")]
use zeroize::Zeroizing;

#[cfg(feature = "writer")]
use crate::ostree::objects::Value;
use crate::ostree::objects::{
    CONTAINER_IMAGE_CONFIG_KEY, Checksum, Commit, CommitMeta, ED25519_SIGNATURES_KEY,
};
use crate::ostree::repo::{Repo, RepoError};

/// Why a key could not be read or a commit not be verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("line {line}: not a base64 line: {reason}")]
    Base64 { line: usize, reason: String },
    #[error("line {line}: Invalid public key of {len} expected 32")]
    KeyLength { line: usize, len: usize },
    #[error("line {line}: not a valid Ed25519 public key (non-canonical encoding or small order)")]
    BadKey { line: usize },
    #[error("no public keys found")]
    NoKeys,
    #[cfg(feature = "writer")]
    #[error("secret key: {0}")]
    SecretKey(String),
    #[error("signature verification failed: Invalid public key of {0} expected 32")]
    InvalidKeyLength(usize),
    #[error("signature verification failed: Invalid signature length of {0} bytes, expected 64")]
    InvalidSignatureLength(usize),
    #[error("Signature validation requested, but no signatures in commit")]
    NoSignatures,
    #[error("No valid (of {0}) signatures found")]
    NoValidSignature(usize),
    #[error("No commitmeta for deploy {0}")]
    NoCommitmeta(String),
    #[error("bootc base commit {0} has detached metadata but no commit object")]
    BaseCommitMissing(String),
    #[cfg(feature = "writer")]
    #[error("cannot read random bytes from the kernel: {0}")]
    Random(String),
    #[cfg(feature = "writer")]
    #[error("secret key {}: {reason}", path.display())]
    SecretKeyFile {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// A verified-usable Ed25519 public key: 32 bytes, canonical encoding, not small order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

impl PublicKey {
    /// Accepts the 32 bytes only if libsodium would: decodable, re-encoding to the same
    /// bytes, and not of small order.
    pub fn from_bytes(raw: &[u8; 32]) -> Option<PublicKey> {
        let key = VerifyingKey::from_bytes(raw).ok()?;
        (key.to_edwards().compress().to_bytes() == *raw && !key.is_weak())
            .then_some(PublicKey { key })
    }
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
    /// The one-line base64 form, without newline.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.to_bytes())
    }
    /// Verifies like libsodium `crypto_sign_verify_detached`.
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        self.key
            .verify_strict(msg, &Signature::from_bytes(sig))
            .is_ok()
    }
}

/// Parses a public key file: one standard, padded base64 key per line; ASCII whitespace
/// around a line and blank lines are ignored; any bad line rejects the file, naming it.
pub fn parse_public_keys(text: &str) -> Result<Vec<PublicKey>, SignError> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
        if line.is_empty() {
            continue;
        }
        let n = i + 1;
        let raw = STANDARD.decode(line).map_err(|e| SignError::Base64 {
            line: n,
            reason: e.to_string(),
        })?;
        let raw: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| SignError::KeyLength {
                line: n,
                len: raw.len(),
            })?;
        keys.push(PublicKey::from_bytes(&raw).ok_or(SignError::BadKey { line: n })?);
    }
    if keys.is_empty() {
        return Err(SignError::NoKeys);
    }
    Ok(keys)
}

/// An Ed25519 secret key. The key material is wiped when dropped.
#[cfg(feature = "writer")]
pub struct SecretKey {
    key: SigningKey,
}

#[cfg(feature = "writer")]
impl SecretKey {
    /// A fresh key from the kernel's random source.
    pub fn generate() -> Result<SecretKey, SignError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        crate::fsutil::fill_random(seed.as_mut()).map_err(|e| SignError::Random(e.to_string()))?;
        Ok(SecretKey {
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// Reads `ostree sign`'s format: one base64 line of seed ‖ public key. The public half
    /// must be the one the seed derives.
    /// Reads a secret key file (one base64 line, `ostree sign`'s format), with ssh's
    /// rule for private keys: the file must be a regular file owned by the user we run
    /// as, with no access for group or others. A key that others could read may already
    /// be theirs; signing with it would vouch for whatever they built.
    pub fn load_file(path: &std::path::Path) -> Result<SecretKey, SignError> {
        use std::io::Read;
        let bad = |reason: String| SignError::SecretKeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let f = crate::fsutil::open_regular(path).map_err(|e| bad(e.to_string()))?;
        let st = rustix::fs::fstat(&f).map_err(|e| bad(e.to_string()))?;
        let me = rustix::process::geteuid().as_raw();
        if st.st_uid != me {
            return Err(bad(format!(
                "owned by uid {}, not by uid {me} that signs with it",
                st.st_uid
            )));
        }
        let mode = st.st_mode & 0o7777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "permissions {mode:04o} are too open: group or others have access (chmod 600 it)"
            )));
        }
        let mut text = Zeroizing::new(String::new());
        f.take(crate::fsutil::KEY_MAX)
            .read_to_string(&mut text)
            .map_err(|e| bad(e.to_string()))?;
        SecretKey::from_base64(&text).map_err(|e| bad(e.to_string()))
    }

    pub fn from_base64(text: &str) -> Result<SecretKey, SignError> {
        let line = text.trim_matches(|c: char| c.is_ascii_whitespace());
        if line.lines().count() != 1 {
            return Err(SignError::SecretKey(
                "expected exactly one base64 line".into(),
            ));
        }
        let raw = Zeroizing::new(
            STANDARD
                .decode(line)
                .map_err(|e| SignError::SecretKey(format!("not base64: {e}")))?,
        );
        let pair: &[u8; 64] = raw.as_slice().try_into().map_err(|_| {
            SignError::SecretKey(format!(
                "{} bytes, expected 64 (seed and public key)",
                raw.len()
            ))
        })?;
        let key = SigningKey::from_keypair_bytes(pair)
            .map_err(|_| SignError::SecretKey("the public half does not match the seed".into()))?;
        Ok(SecretKey { key })
    }

    /// The one-line base64 form, without newline. Zeroized when dropped.
    pub fn to_base64(&self) -> Zeroizing<String> {
        let pair = Zeroizing::new(self.key.to_keypair_bytes());
        Zeroizing::new(STANDARD.encode(pair.as_ref()))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: self.key.verifying_key(),
        }
    }

    /// PureEd25519 (RFC 8032) signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

/// libsodium's `crypto_sign_verify_detached` over raw bytes, as ostree's
/// `otcore_validate_ed25519_signature` calls it: lengths checked first (hard errors), then
/// `Ok(false)` for any key or signature libsodium rejects.
pub fn verify_raw(key: &[u8], msg: &[u8], sig: &[u8]) -> Result<bool, SignError> {
    let key: &[u8; 32] = key
        .try_into()
        .map_err(|_| SignError::InvalidKeyLength(key.len()))?;
    let sig: &[u8; 64] = sig
        .try_into()
        .map_err(|_| SignError::InvalidSignatureLength(sig.len()))?;
    Ok(PublicKey::from_bytes(key).is_some_and(|k| k.verify(msg, sig)))
}

/// Signatures stored in detached metadata, in order; none when the key is absent or not
/// an `aay`.
pub fn signatures(commitmeta: &CommitMeta) -> Option<Vec<Vec<u8>>> {
    commitmeta.get(ED25519_SIGNATURES_KEY)?.as_byte_arrays()
}

/// Appends `sig` to the detached metadata's signatures, keeping every other key and
/// signature.
#[cfg(feature = "writer")]
pub fn add_signature(commitmeta: &mut CommitMeta, sig: &[u8; 64]) {
    let mut sigs = signatures(commitmeta).unwrap_or_default();
    sigs.push(sig.to_vec());
    commitmeta.insert(ED25519_SIGNATURES_KEY, Value::byte_arrays(&sigs));
}

/// Checks a commit's signatures with ostree's loop: keys outer in file order, signatures
/// inner in array order, the first valid pair wins and names the key (its index); a
/// signature of the wrong length aborts everything when reached.
pub fn verify_commit(
    commit_bytes: &[u8],
    commitmeta: &CommitMeta,
    keys: &[PublicKey],
) -> Result<usize, SignError> {
    let sigs = signatures(commitmeta).ok_or(SignError::NoSignatures)?;
    for (i, key) in keys.iter().enumerate() {
        for sig in &sigs {
            if verify_raw(&key.to_bytes(), commit_bytes, sig)? {
                return Ok(i);
            }
        }
    }
    Err(SignError::NoValidSignature(sigs.len()))
}

/// A commit as loaded from a repository: its exact bytes (what signatures cover) and
/// the parsed object.
#[derive(Clone, Debug)]
pub struct LoadedCommit {
    pub checksum: Checksum,
    pub bytes: Vec<u8>,
    pub commit: Commit,
}

/// The parent of a bootc container commit whose signatures may stand in for the
/// commit's own: the commit's metadata has `ostree.container.image-config` (an `s`) and
/// its parent is a 32-byte checksum.
pub fn bootc_base_commit(commit: &Commit) -> Option<Checksum> {
    commit.metadata.get(CONTAINER_IMAGE_CONFIG_KEY)?.as_str()?;
    commit.parent
}

/// The commit whose signatures and digest prepare-root checks.
#[derive(Debug)]
pub struct Selected<'a> {
    pub commit: &'a LoadedCommit,
    pub commitmeta: &'a CommitMeta,
    /// The bootc base commit was chosen.
    pub is_base: bool,
}

/// prepare-root's choice between a commit and its bootc base: the commit when it has
/// detached metadata (even without signatures), else the base when the base has some,
/// else an error naming the deployment. `base` is `None` when the fallback does not
/// apply ([`bootc_base_commit`]); otherwise it holds the base commit (if its object
/// exists) and the base's detached metadata (if it exists).
pub fn select_signed_commit<'a>(
    main: &'a LoadedCommit,
    main_meta: Option<&'a CommitMeta>,
    base: Option<(Option<&'a LoadedCommit>, Option<&'a CommitMeta>)>,
    deploy_path: &str,
) -> Result<Selected<'a>, SignError> {
    if let Some(meta) = main_meta {
        return Ok(Selected {
            commit: main,
            commitmeta: meta,
            is_base: false,
        });
    }
    if let Some((base_commit, Some(meta))) = base {
        let commit = base_commit.ok_or_else(|| {
            SignError::BaseCommitMissing(main.commit.parent.map(hex::encode).unwrap_or_default())
        })?;
        return Ok(Selected {
            commit,
            commitmeta: meta,
            is_base: true,
        });
    }
    Err(SignError::NoCommitmeta(deploy_path.to_string()))
}

/// What prepare-root loads for a deployment before checking signatures: the commit, its
/// detached metadata, and for a bootc container commit without detached metadata its
/// base commit and the base's detached metadata.
#[derive(Clone, Debug)]
pub struct DeployCommit {
    pub main: LoadedCommit,
    pub main_meta: Option<CommitMeta>,
    /// `Some` when the bootc fallback applies: the base commit (if its object exists)
    /// and its detached metadata (if it exists).
    pub base: Option<(Option<LoadedCommit>, Option<CommitMeta>)>,
}

fn load_commit(repo: &Repo, csum: &Checksum) -> Result<LoadedCommit, RepoError> {
    let (bytes, commit) = repo.load_commit(csum)?;
    Ok(LoadedCommit {
        checksum: *csum,
        bytes,
        commit,
    })
}

/// Loads what prepare-root checks for the deployment of commit `csum`: the commit must
/// exist (and hash to its name); the rest may be missing. The bootc base is looked at
/// only when the commit has no detached metadata, as [`select_signed_commit`] would not
/// use it otherwise.
pub fn load_commit_for_deploy(repo: &Repo, csum: &Checksum) -> Result<DeployCommit, RepoError> {
    let main = load_commit(repo, csum)?;
    let main_meta = repo.load_commitmeta(csum)?.map(|(_, m)| m);
    let base = match bootc_base_commit(&main.commit) {
        Some(b) if main_meta.is_none() => {
            let commit = match load_commit(repo, &b) {
                Ok(c) => Some(c),
                Err(RepoError::Io { err, .. }) if err.kind() == std::io::ErrorKind::NotFound => {
                    None
                }
                Err(e) => return Err(e),
            };
            Some((commit, repo.load_commitmeta(&b)?.map(|(_, m)| m)))
        }
        _ => None,
    };
    Ok(DeployCommit {
        main,
        main_meta,
        base,
    })
}

impl DeployCommit {
    /// [`select_signed_commit`] over what was loaded.
    pub fn select(&self, deploy_path: &str) -> Result<Selected<'_>, SignError> {
        let base = self.base.as_ref().map(|(c, m)| (c.as_ref(), m.as_ref()));
        select_signed_commit(&self.main, self.main_meta.as_ref(), base, deploy_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ostree::objects::VarDict;

    #[derive(Debug)]
    struct Case {
        message: Vec<u8>,
        pub_key: Vec<u8>,
        signature: Vec<u8>,
    }

    /// The ten ed25519-speccheck cases, read without a JSON dependency: each field is a
    /// quoted hex string.
    fn speccheck() -> Vec<Case> {
        let text = include_str!("../tests/data/ed25519/speccheck-cases.json");
        let field = |obj: &str, name: &str| -> Vec<u8> {
            let k = format!("\"{name}\":\"");
            let start = obj.find(&k).expect("field") + k.len();
            let end = start + obj[start..].find('"').expect("end quote");
            hex::decode(&obj[start..end]).expect("hex")
        };
        text.split('}')
            .filter(|o| o.contains("message"))
            .map(|o| Case {
                message: field(o, "message"),
                pub_key: field(o, "pub_key"),
                signature: field(o, "signature"),
            })
            .collect()
    }

    #[test]
    fn speccheck_vectors_match_libsodium() {
        let cases = speccheck();
        assert_eq!(cases.len(), 10);
        let accepted: Vec<usize> = cases
            .iter()
            .enumerate()
            .filter(|(_, c)| verify_raw(&c.pub_key, &c.message, &c.signature).unwrap())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(accepted, vec![3]);
    }

    #[test]
    fn key_file_parsing() {
        let k = SecretKey::from_seed(&[5; 32]).public_key();
        let line = k.to_base64();
        assert_eq!(
            parse_public_keys(&format!("\n  {line}\t\r\n\n")).unwrap(),
            vec![k]
        );
        assert_eq!(parse_public_keys(""), Err(SignError::NoKeys));
        assert_eq!(parse_public_keys(" \n\n"), Err(SignError::NoKeys));
        // Unpadded: GLib would decode 30 bytes; we refuse the line.
        assert!(matches!(
            parse_public_keys(line.trim_end_matches('=')),
            Err(SignError::Base64 { line: 1, .. })
        ));
        assert!(matches!(
            parse_public_keys(&format!("{line}\n# comment")),
            Err(SignError::Base64 { line: 2, .. })
        ));
        assert!(matches!(
            parse_public_keys("AAAA"),
            Err(SignError::KeyLength { line: 1, len: 3 })
        ));
        // The identity point (small order) and a non-canonical y = p + 1 encoding.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert_eq!(
            parse_public_keys(&STANDARD.encode(ident)),
            Err(SignError::BadKey { line: 1 })
        );
        let mut noncanon = [0xffu8; 32];
        noncanon[0] = 0xee;
        noncanon[31] = 0x7f;
        assert!(parse_public_keys(&STANDARD.encode(noncanon)).is_err());
    }

    #[test]
    fn secret_key_roundtrip_and_checks() {
        let k = SecretKey::generate().unwrap();
        let b64 = k.to_base64();
        let k2 = SecretKey::from_base64(&format!("{}\n", b64.as_str())).unwrap();
        assert_eq!(k2.public_key(), k.public_key());
        let sig = k2.sign(b"msg");
        assert!(k.public_key().verify(b"msg", &sig));
        // A public half that does not belong to the seed.
        let other = SecretKey::from_seed(&[1; 32]);
        let mut pair = STANDARD.decode(b64.as_str()).unwrap();
        pair[32..].copy_from_slice(&other.public_key().to_bytes());
        assert!(SecretKey::from_base64(&STANDARD.encode(&pair)).is_err());
        assert!(SecretKey::from_base64("AAAA").is_err());
    }

    #[test]
    fn ostree_verification_loop() {
        let commit = b"commit bytes";
        let k1 = SecretKey::from_seed(&[1; 32]);
        let k2 = SecretKey::from_seed(&[2; 32]);
        let keys = [k1.public_key(), k2.public_key()];
        let mut meta = VarDict::new();
        assert_eq!(
            verify_commit(commit, &meta, &keys),
            Err(SignError::NoSignatures)
        );
        meta.insert("other", Value::bool(true));
        add_signature(&mut meta, &k2.sign(commit));
        assert_eq!(verify_commit(commit, &meta, &keys), Ok(1));
        add_signature(&mut meta, &k1.sign(commit));
        assert_eq!(verify_commit(commit, &meta, &keys), Ok(0));
        assert_eq!(signatures(&meta).unwrap().len(), 2);
        assert_eq!(meta.get("other").unwrap().as_bool(), Some(true));
        assert_eq!(
            verify_commit(b"tampered", &meta, &keys),
            Err(SignError::NoValidSignature(2))
        );
        // A short signature is a hard error once the loop reaches it.
        let mut bad = VarDict::new();
        bad.insert(
            ED25519_SIGNATURES_KEY,
            Value::byte_arrays(&[vec![0; 64], vec![0; 10]]),
        );
        assert_eq!(
            verify_commit(commit, &bad, &keys),
            Err(SignError::InvalidSignatureLength(10))
        );
        assert_eq!(
            verify_raw(&[0; 31], commit, &[0; 64]),
            Err(SignError::InvalidKeyLength(31))
        );
        assert_eq!(
            verify_raw(&[], &[], &[]),
            Err(SignError::InvalidKeyLength(0))
        );
    }

    fn loaded(metadata: VarDict, parent: Option<Checksum>) -> LoadedCommit {
        let commit = Commit {
            metadata,
            parent,
            related: vec![],
            subject: String::new(),
            body: String::new(),
            timestamp: 0,
            root_contents: [0; 32],
            root_metadata: [0; 32],
        };
        LoadedCommit {
            checksum: [9; 32],
            bytes: commit.to_bytes().unwrap(),
            commit,
        }
    }

    #[test]
    fn bootc_fallback_selection() {
        let mut m = VarDict::new();
        m.insert(CONTAINER_IMAGE_CONFIG_KEY, Value::string("{}").unwrap());
        let main = loaded(m.clone(), Some([1; 32]));
        assert_eq!(bootc_base_commit(&main.commit), Some([1; 32]));
        assert_eq!(
            bootc_base_commit(&loaded(VarDict::new(), Some([1; 32])).commit),
            None
        );
        assert_eq!(bootc_base_commit(&loaded(m, None).commit), None);
        let base = loaded(VarDict::new(), None);
        let meta = VarDict::new();
        let base_meta = VarDict::new();
        let s = select_signed_commit(
            &main,
            Some(&meta),
            Some((Some(&base), Some(&base_meta))),
            "/d",
        )
        .unwrap();
        assert!(!s.is_base);
        let s =
            select_signed_commit(&main, None, Some((Some(&base), Some(&base_meta))), "/d").unwrap();
        assert!(s.is_base);
        assert!(std::ptr::eq(s.commit, &base));
        assert_eq!(
            select_signed_commit(&main, None, Some((Some(&base), None)), "/d").unwrap_err(),
            SignError::NoCommitmeta("/d".into())
        );
        assert_eq!(
            select_signed_commit(&main, None, None, "/d").unwrap_err(),
            SignError::NoCommitmeta("/d".into())
        );
        assert!(matches!(
            select_signed_commit(&main, None, Some((None, Some(&base_meta))), "/d"),
            Err(SignError::BaseCommitMissing(_))
        ));
    }

    #[test]
    fn deploy_commit_loading_and_fallback() {
        use crate::ostree::objects::{ObjectType, object_path};
        let d = tempfile::tempdir().unwrap();
        let objects = d.path().join("objects");
        std::fs::create_dir_all(&objects).unwrap();
        std::fs::write(
            d.path().join("config"),
            "[core]\nrepo_version=1\nmode=bare\n",
        )
        .unwrap();
        let repo = Repo::open(d.path()).unwrap();
        let write = |c: &Checksum, t: ObjectType, b: &[u8]| {
            let p = objects.join(object_path(c, t));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b).unwrap();
        };
        let base = loaded(VarDict::new(), None);
        let base_csum = crate::ostree::objects::sha256(&base.bytes);
        let mut m = VarDict::new();
        m.insert(CONTAINER_IMAGE_CONFIG_KEY, Value::string("{}").unwrap());
        let main = loaded(m, Some(base_csum));
        let main_csum = crate::ostree::objects::sha256(&main.bytes);
        assert!(matches!(
            load_commit_for_deploy(&repo, &main_csum),
            Err(RepoError::Io { .. })
        ));
        // A commit object holding another commit's bytes is refused.
        write(&main_csum, ObjectType::Commit, &base.bytes);
        assert!(load_commit_for_deploy(&repo, &main_csum).is_err());
        write(&main_csum, ObjectType::Commit, &main.bytes);
        let dc = load_commit_for_deploy(&repo, &main_csum).unwrap();
        assert!(matches!(dc.select("/d"), Err(SignError::NoCommitmeta(_))));
        let k = SecretKey::from_seed(&[3; 32]);
        let mut bm = VarDict::new();
        add_signature(&mut bm, &k.sign(&base.bytes));
        write(&base_csum, ObjectType::CommitMeta, &bm.to_bytes().unwrap());
        let dc = load_commit_for_deploy(&repo, &main_csum).unwrap();
        assert!(matches!(
            dc.select("/d"),
            Err(SignError::BaseCommitMissing(_))
        ));
        write(&base_csum, ObjectType::Commit, &base.bytes);
        let dc = load_commit_for_deploy(&repo, &main_csum).unwrap();
        let s = dc.select("/d").unwrap();
        assert!(s.is_base);
        assert_eq!(
            verify_commit(&s.commit.bytes, s.commitmeta, &[k.public_key()]),
            Ok(0)
        );
    }

    fn load_err(p: &std::path::Path) -> String {
        match SecretKey::load_file(p) {
            Ok(_) => panic!("{} loaded", p.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn secret_key_file_rules() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        let sk = SecretKey::from_seed(&[5; 32]);
        std::fs::write(&p, format!("{}\n", sk.to_base64().as_str())).unwrap();
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let k = SecretKey::load_file(&p).unwrap();
            assert_eq!(k.public_key(), sk.public_key());
        }
        for mode in [0o644, 0o640, 0o604, 0o660, 0o601] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = load_err(&p);
            assert!(
                e.contains(&format!("permissions {mode:04o} are too open")) && e.contains("/k"),
                "{e}"
            );
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        if rustix::process::geteuid().is_root() {
            rustix::fs::chown(&p, Some(rustix::fs::Uid::from_raw(1234)), None).unwrap();
            let e = load_err(&p);
            assert!(e.contains("owned by uid 1234"), "{e}");
        }
        let e = load_err(d.path());
        assert!(e.contains("is a directory"), "{e}");
    }
}

#[cfg(test)]
mod signature_roundtrip {
    use super::*;
    use crate::ostree::objects::VarDict;
    use sha2::{Digest, Sha256};

    #[test]
    fn signatures_of_any_bytes_survive_a_roundtrip() {
        let mut bad = 0;
        for i in 0u32..3000 {
            let mut s = [0u8; 64];
            s[..32].copy_from_slice(&Sha256::digest(i.to_le_bytes()));
            s[32..].copy_from_slice(&Sha256::digest((i + 100_000).to_le_bytes()));
            let mut m = VarDict::new();
            add_signature(&mut m, &s);
            let m = VarDict::parse(&m.to_bytes().unwrap());
            if signatures(&m).map(|v| v.len()) != Some(1) {
                bad += 1;
            }
        }
        assert_eq!(bad, 0);
    }
}
