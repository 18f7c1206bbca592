//! Which known key a misspelled one meant. A key the kernel or DriverKit does not know is
//! silently ignored on a Mac — a misspelled entitlement or personality key looks exactly like a
//! missing one, with no log line — so the checker names the key that was probably meant.
//!
//! A key is a near miss of a known key when, ignoring case:
//! - they are equal once `-`, `_`, `.` and spaces are removed (`scsi-controller`);
//! - or they are equal once a leading `k` and a trailing `Key` are removed from the misspelling
//!   (the SDK's macro name copied instead of its value: `kIOPCIPrimaryMatchKey`);
//! - or their optimal-string-alignment distance (insertions, deletions, substitutions,
//!   adjacent transpositions) is at most 2 (at most 1 for keys shorter than 10 characters);
//! - or the misspelling is in [`KNOWN_MISSPELLINGS`].
//!
//! A key that is itself known is never a misspelling, so legitimate neighbours
//! (`transport.usb` next to `transport.pci`) are left alone.

/// Misspellings the distance rules miss, and the key each one means.
pub const KNOWN_MISSPELLINGS: &[(&str, &str)] = &[
    (
        "com.apple.developer.driverkit.family.scsi",
        "com.apple.developer.driverkit.family.scsicontroller",
    ),
    (
        "com.apple.developer.driverkit.family.scsi-parallel",
        "com.apple.developer.driverkit.family.scsicontroller",
    ),
    (
        "com.apple.developer.driverkit.scsicontroller",
        "com.apple.developer.driverkit.family.scsicontroller",
    ),
    (
        "com.apple.developer.driverkit.family.scsi-controller",
        "com.apple.developer.driverkit.family.scsicontroller",
    ),
    ("com.apple.developer.driverkit.pci", "com.apple.developer.driverkit.transport.pci"),
    ("com.apple.developer.driverkit.transport.pcie", "com.apple.developer.driverkit.transport.pci"),
    (
        "com.apple.developer.driverkit.allow-any-userclient",
        "com.apple.developer.driverkit.allow-any-userclient-access",
    ),
    (
        "com.apple.developer.driverkit.user-client-access",
        "com.apple.developer.driverkit.userclient-access",
    ),
    ("com.apple.developer.systemextension.install", "com.apple.developer.system-extension.install"),
    (
        "com.apple.developer.system-extensions.install",
        "com.apple.developer.system-extension.install",
    ),
    ("CFBundleKernelIdentifier", "CFBundleIdentifierKernel"),
    ("CFBundleIdentifierKext", "CFBundleIdentifierKernel"),
    ("IOUserServer", "IOUserServerName"),
    ("IOPCIPrimaryMatches", "IOPCIPrimaryMatch"),
    ("UserClientProperty", "UserClientProperties"),
];

/// The known key `candidate` is a near miss of, if any.
pub fn suggest<'k>(candidate: &str, known: &[&'k str]) -> Option<&'k str> {
    if known.contains(&candidate) {
        return None;
    }
    if let Some((_, meant)) = KNOWN_MISSPELLINGS.iter().find(|(m, _)| *m == candidate) {
        if let Some(k) = known.iter().find(|k| *k == meant) {
            return Some(k);
        }
    }
    let squeezed = squeeze(candidate);
    let unmacro = squeeze(strip_macro_affixes(candidate));
    let lower = candidate.to_lowercase();
    let mut best: Option<(usize, &'k str)> = None;
    for k in known {
        let ks = squeeze(k);
        let score = if ks == squeezed || ks == unmacro {
            0
        } else {
            let d = osa_distance(&lower, &k.to_lowercase());
            let limit = if k.chars().count() < 10 { 1 } else { 2 };
            if d > limit {
                continue;
            }
            d
        };
        if best.is_none_or(|(b, _)| score < b) {
            best = Some((score, k));
        }
    }
    best.map(|(_, k)| k)
}

/// Lowercase, without `-`, `_`, `.`, spaces.
fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '-' | '_' | '.' | ' ')).flat_map(char::to_lowercase).collect()
}

/// `kIOPCIPrimaryMatchKey` → `IOPCIPrimaryMatch`.
fn strip_macro_affixes(s: &str) -> &str {
    let s = s.strip_suffix("Key").unwrap_or(s);
    match s.strip_prefix('k') {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_uppercase()) => rest,
        _ => s,
    }
}

/// Optimal string alignment distance (Damerau–Levenshtein without repeated edits of a
/// substring), over chars.
pub fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCSI: &str = "com.apple.developer.driverkit.family.scsicontroller";
    const KNOWN: &[&str] = &[
        "com.apple.developer.driverkit",
        "com.apple.developer.driverkit.transport.pci",
        "com.apple.developer.driverkit.transport.usb",
        SCSI,
        "IOClass",
        "IOUserClass",
        "IOPCIMatch",
        "IOPCIPrimaryMatch",
        "IOPCIClassMatch",
        "CFBundleIdentifierKernel",
    ];

    #[test]
    fn distances() {
        assert_eq!(osa_distance("", ""), 0);
        assert_eq!(osa_distance("abc", ""), 3);
        assert_eq!(osa_distance("kitten", "sitting"), 3);
        assert_eq!(osa_distance("IOPCIPrimaryMacth", "IOPCIPrimaryMatch"), 1);
        assert_eq!(osa_distance("ca", "abc"), 3, "OSA, not unrestricted Damerau");
    }

    #[test]
    fn the_scsi_controller_family_misspellings() {
        for bad in [
            "com.apple.developer.driverkit.family.scsi-controller",
            "com.apple.developer.driverkit.family.scsi_controller",
            "com.apple.developer.driverkit.family.SCSIController",
            "com.apple.developer.driverkit.family.scsicontrollers",
            "com.apple.developer.driverkit.family.scsicontoller",
            "com.apple.developer.driverkit.family.scsi",
            "com.apple.developer.driverkit.scsicontroller",
        ] {
            assert_eq!(suggest(bad, KNOWN), Some(SCSI), "{bad}");
        }
    }

    #[test]
    fn personality_key_misspellings() {
        assert_eq!(suggest("IOPCIPrimaryMacth", KNOWN), Some("IOPCIPrimaryMatch"));
        assert_eq!(suggest("kIOPCIPrimaryMatchKey", KNOWN), Some("IOPCIPrimaryMatch"));
        assert_eq!(suggest("IOPCIMatchKey", KNOWN), Some("IOPCIMatch"));
        assert_eq!(suggest("ioclass", KNOWN), Some("IOClass"));
        assert_eq!(suggest("IOClas", KNOWN), Some("IOClass"));
        assert_eq!(suggest("CFBundleKernelIdentifier", KNOWN), Some("CFBundleIdentifierKernel"));
        assert_eq!(suggest("CFBundleIdentiferKernel", KNOWN), Some("CFBundleIdentifierKernel"));
    }

    #[test]
    fn known_keys_and_strangers_are_not_misspellings() {
        for ok in KNOWN {
            assert_eq!(suggest(ok, KNOWN), None, "{ok}");
        }
        // transport.usb is 3 edits from transport.pci, and known anyway.
        assert_eq!(suggest("com.apple.developer.driverkit.transport.hid", KNOWN), None);
        assert_eq!(suggest("FakeDiskBlockSize", KNOWN), None);
        assert_eq!(suggest("IOMatchCategory", KNOWN), None);
        // Short keys get one edit only.
        assert_eq!(suggest("IOCls", KNOWN), None);
    }
}
