//! The composefs mode: prepare-root.conf's `composefs.enabled` and the kernel argument
//! `ostree.prepare-root.composefs` both spell it. A leaf module, so that [`crate::cmdline`]
//! and [`crate::config`] both use it without importing each other.

use std::fmt;

/// `composefs.enabled`, and the kernel argument `ostree.prepare-root.composefs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComposefsMode {
    /// Legacy bind mount of the deployment; no composefs.
    No,
    /// composefs if the deployment has an image, the legacy bind otherwise.
    Maybe,
    /// composefs required; fs-verity of the objects not required.
    Yes,
    /// composefs with fs-verity required on the image and every object.
    Verity,
    /// `Verity`, plus the commit signature checked and its composefs digest enforced.
    Signed,
}

impl ComposefsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ComposefsMode::No => "no",
            ComposefsMode::Maybe => "maybe",
            ComposefsMode::Yes => "yes",
            ComposefsMode::Verity => "verity",
            ComposefsMode::Signed => "signed",
        }
    }

    /// `Yes`, `Verity` and `Signed` all mean ostree's `OT_TRISTATE_YES`.
    pub fn is_required(self) -> bool {
        matches!(
            self,
            ComposefsMode::Yes | ComposefsMode::Verity | ComposefsMode::Signed
        )
    }

    /// ostree's tristate words (`_ostree_parse_tristate`), case-sensitive.
    pub fn parse_tristate(s: &str) -> Option<ComposefsMode> {
        match s {
            "yes" | "true" | "1" => Some(ComposefsMode::Yes),
            "no" | "false" | "0" => Some(ComposefsMode::No),
            "maybe" => Some(ComposefsMode::Maybe),
            _ => None,
        }
    }
}

impl ComposefsMode {
    /// The order of protection: no < maybe < yes < verity < signed.
    pub(crate) fn strength(self) -> u8 {
        match self {
            ComposefsMode::No => 0,
            ComposefsMode::Maybe => 1,
            ComposefsMode::Yes => 2,
            ComposefsMode::Verity => 3,
            ComposefsMode::Signed => 4,
        }
    }
}

impl fmt::Display for ComposefsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
