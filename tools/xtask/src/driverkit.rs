//! `check-driverkit-lib <lib.a> <arm64|x86_64>`: inspect a DriverKit static library built by
//! `scripts/build-driverkit-lib.sh`.
//!
//! Xcode links `libdkraid.a` into the dext with ld64, which wants every object to say which
//! platform it was built for, and the dext may import nothing DriverKit's runtime does not export.
//! So every member of the archive must
//!
//! * be a 64-bit Mach-O relocatable object (`MH_OBJECT`) for the expected CPU, and
//! * carry exactly one `LC_BUILD_VERSION` load command, with platform `PLATFORM_DRIVERKIT` (10);
//!
//! and the archive as a whole, once references between its own members are resolved, may leave
//! nothing undefined but the symbols in [`ALLOWED_UNDEFINED`], which DriverKit's libc provides. It
//! must not define those symbols either: a copy in the archive (compiler-builtins' `mem` feature)
//! would shadow DriverKit's own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;

use object::macho;
use object::read::archive::ArchiveFile;
use object::read::macho::{MachHeader as _, Nlist as _};
use object::{Endianness, FileKind};

/// The only symbols the archive may leave undefined: DriverKit's libc provides them, and LLVM
/// emits calls to them for copies, fills and comparisons (`bzero` for zero-fills on Darwin).
pub const ALLOWED_UNDEFINED: [&str; 5] = ["_memcpy", "_memmove", "_memset", "_memcmp", "_bzero"];

/// `PLATFORM_DRIVERKIT` from `<mach-o/loader.h>`.
pub const PLATFORM_DRIVERKIT: u32 = macho::PLATFORM_DRIVERKIT.0;

const USAGE: &str = "usage: cargo run -p xtask -- check-driverkit-lib <lib.a> <arm64|x86_64>";

/// Entry point of the `check-driverkit-lib` subcommand; `args` are the arguments after its name.
///
/// Exits 0 when the library passes, 1 when it was inspected and fails a check, 2 when it could
/// not be inspected at all (bad arguments, unreadable file, not an archive).
pub fn main(args: &[String]) -> ExitCode {
    let [path, arch] = args else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let Some(arch) = Arch::from_name(arch) else {
        eprintln!("check-driverkit-lib: unknown architecture `{arch}` (expected arm64 or x86_64)");
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(err) => {
            eprintln!("check-driverkit-lib: cannot read {path}: {err}");
            return ExitCode::from(2);
        }
    };
    let members = match read_archive(&data) {
        Ok(members) => members,
        Err(err) => {
            eprintln!("check-driverkit-lib: {path}: {err}");
            return ExitCode::from(2);
        }
    };
    let report = check(&members, arch);
    print!("{}", report.render(path, arch));
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The CPU a DriverKit library is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Arm64,
    X86_64,
}

impl Arch {
    /// Parses the architecture as the build script names it (`arm64`, `x86_64`), also accepting
    /// Rust's spellings (`aarch64`, `x86-64`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "arm64" | "aarch64" => Some(Self::Arm64),
            "x86_64" | "x86-64" => Some(Self::X86_64),
            _ => None,
        }
    }

    /// The Mach-O `cputype` its objects must carry.
    pub fn cpu_type(self) -> u32 {
        match self {
            Self::Arm64 => macho::CPU_TYPE_ARM64.0,
            Self::X86_64 => macho::CPU_TYPE_X86_64.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Arm64 => "arm64",
            Self::X86_64 => "x86_64",
        }
    }
}

/// Names a Mach-O `cputype`.
pub fn cpu_type_name(cputype: u32) -> String {
    let name = match macho::CpuType(cputype) {
        macho::CPU_TYPE_ARM64 => "arm64",
        macho::CPU_TYPE_ARM64_32 => "arm64_32",
        macho::CPU_TYPE_X86_64 => "x86_64",
        macho::CPU_TYPE_X86 => "i386",
        macho::CPU_TYPE_ARM => "arm",
        macho::CPU_TYPE_POWERPC => "ppc",
        macho::CPU_TYPE_POWERPC64 => "ppc64",
        _ => return format!("cputype {cputype:#x}"),
    };
    name.to_owned()
}

/// Names an `LC_BUILD_VERSION` platform, as `<mach-o/loader.h>` does without the `PLATFORM_`.
pub fn platform_name(platform: u32) -> &'static str {
    match platform {
        0 => "unknown",
        1 => "macos",
        2 => "ios",
        3 => "tvos",
        4 => "watchos",
        5 => "bridgeos",
        6 => "maccatalyst",
        7 => "iossimulator",
        8 => "tvossimulator",
        9 => "watchossimulator",
        10 => "driverkit",
        11 => "visionos",
        12 => "visionossimulator",
        13 => "firmware",
        14 => "sepos",
        _ => "unrecognised",
    }
}

/// Formats a Mach-O version (`xxxx.yy.zz` in nibbles) as `major.minor[.patch]`.
pub fn format_version(version: u32) -> String {
    let (major, minor, patch) = (version >> 16, (version >> 8) & 0xff, version & 0xff);
    if patch == 0 {
        format!("{major}.{minor}")
    } else {
        format!("{major}.{minor}.{patch}")
    }
}

/// The fields of one `LC_BUILD_VERSION` load command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BuildVersion {
    pub platform: u32,
    pub minos: u32,
    pub sdk: u32,
}

impl std::fmt::Display for BuildVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sdk = if self.sdk == 0 { "n/a".to_owned() } else { format_version(self.sdk) };
        write!(
            f,
            "{} ({}), minos {}, sdk {sdk}",
            platform_name(self.platform),
            self.platform,
            format_version(self.minos),
        )
    }
}

/// One archive member, as far as the checks care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// What the member's Mach-O header and load commands say, or why it is not a usable object.
    pub object: Result<ObjectInfo, String>,
}

/// What a Mach-O relocatable object says about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub cputype: u32,
    /// Every `LC_BUILD_VERSION` load command, in order.
    pub build_versions: Vec<BuildVersion>,
    /// External symbols the object defines (private externs and common symbols included: the
    /// static linker resolves references against those too).
    pub defined: Vec<String>,
    /// External symbols the object references without defining.
    pub undefined: Vec<String>,
}

/// Reads every member of a static library (`ar` archive, the symbol table excluded).
pub fn read_archive(data: &[u8]) -> Result<Vec<Member>, String> {
    let archive = ArchiveFile::parse(data)
        .map_err(|err| format!("not a static library (ar archive): {err}"))?;
    if archive.is_thin() {
        return Err("thin archives are not supported".to_owned());
    }
    let mut members = Vec::new();
    for member in archive.members() {
        let member = member.map_err(|err| format!("malformed archive: {err}"))?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        let object = member
            .data(data)
            .map_err(|err| format!("unreadable member data: {err}"))
            .and_then(read_object);
        members.push(Member { name, object });
    }
    Ok(members)
}

/// Reads the header, `LC_BUILD_VERSION`s and external symbols of a Mach-O relocatable object.
pub fn read_object(data: &[u8]) -> Result<ObjectInfo, String> {
    match FileKind::parse(data) {
        Ok(FileKind::MachO64) => {}
        Ok(kind) => return Err(format!("not a 64-bit Mach-O object but {kind:?}")),
        Err(err) => return Err(format!("not an object file: {err}")),
    }
    let malformed = |err: object::Error| format!("malformed Mach-O: {err}");
    let header = macho::MachHeader64::<Endianness>::parse(data, 0).map_err(malformed)?;
    let endian = header.endian().map_err(malformed)?;
    let filetype = header.filetype(endian);
    if filetype != macho::MH_OBJECT {
        return Err(format!(
            "Mach-O file type {:#x}, not a relocatable object (MH_OBJECT)",
            filetype.0
        ));
    }
    let mut info = ObjectInfo { cputype: header.cputype(endian).0, ..ObjectInfo::default() };
    let mut commands = header.load_commands(endian, data, 0).map_err(malformed)?;
    while let Some(command) = commands.next().map_err(malformed)? {
        if let Some((build_version, _tools)) = command.build_version(endian).map_err(malformed)? {
            info.build_versions.push(BuildVersion {
                platform: build_version.platform.get(endian).0,
                minos: build_version.minos.get(endian).0,
                sdk: build_version.sdk.get(endian).0,
            });
        }
        if let Some(symtab) = command.symtab().map_err(malformed)? {
            let symbols = symtab
                .symbols::<macho::MachHeader64<Endianness>, _>(endian, data)
                .map_err(malformed)?;
            for nlist in symbols.iter() {
                let flags = nlist.n_type();
                if flags.is_stab() || !flags.is_ext() {
                    continue;
                }
                let name = nlist.name(endian, symbols.strings()).map_err(malformed)?;
                let name = String::from_utf8_lossy(name).into_owned();
                if nlist.is_undefined() {
                    info.undefined.push(name);
                } else {
                    info.defined.push(name);
                }
            }
        }
    }
    Ok(info)
}

/// The symbols the archive references but none of its members defines, each with the members
/// that reference it.
pub fn unresolved_symbols(members: &[Member]) -> BTreeMap<&str, BTreeSet<&str>> {
    let objects = || {
        members
            .iter()
            .filter_map(|member| Some((member.name.as_str(), member.object.as_ref().ok()?)))
    };
    let defined: BTreeSet<&str> =
        objects().flat_map(|(_, object)| object.defined.iter().map(String::as_str)).collect();
    let mut unresolved: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (member, object) in objects() {
        for symbol in &object.undefined {
            if !defined.contains(symbol.as_str()) {
                unresolved.entry(symbol).or_default().insert(member);
            }
        }
    }
    unresolved
}

/// The outcome of [`check`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub member_count: usize,
    /// How many members carry each CPU type.
    pub cpu_types: BTreeMap<u32, usize>,
    /// How many members carry each `LC_BUILD_VERSION`.
    pub build_versions: BTreeMap<BuildVersion, usize>,
    /// The allowed symbols the archive leaves undefined.
    pub allowed_undefined: BTreeSet<String>,
    /// One line per problem; empty when the library passes.
    pub failures: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The human-readable report the subcommand prints.
    pub fn render(&self, path: &str, arch: Arch) -> String {
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        line(format!(
            "check-driverkit-lib: {path} (expecting {}, platform driverkit)",
            arch.name()
        ));
        line(format!("  members:   {}", self.member_count));
        for (&cputype, count) in &self.cpu_types {
            line(format!("  cpu:       {} ({count} members)", cpu_type_name(cputype)));
        }
        for (build_version, count) in &self.build_versions {
            line(format!("  platform:  {build_version} ({count} members)"));
        }
        let allowed = if self.allowed_undefined.is_empty() {
            "none".to_owned()
        } else {
            let names: Vec<&str> = self.allowed_undefined.iter().map(String::as_str).collect();
            names.join(" ")
        };
        line(format!("  undefined: {allowed} (allowed: DriverKit libc)"));
        if self.passed() {
            line("  result:    OK".to_owned());
        } else {
            line(format!("  result:    FAILED, {} problem(s):", self.failures.len()));
            for failure in &self.failures {
                line(format!("    - {failure}"));
            }
        }
        out
    }
}

/// Runs every check over the members of one archive built for `arch`.
pub fn check(members: &[Member], arch: Arch) -> Report {
    let mut report = Report { member_count: members.len(), ..Report::default() };
    if members.is_empty() {
        report.failures.push("the archive has no members".to_owned());
    }

    for member in members {
        let name = &member.name;
        let object = match &member.object {
            Ok(object) => object,
            Err(problem) => {
                report.failures.push(format!("member {name}: {problem}"));
                continue;
            }
        };
        *report.cpu_types.entry(object.cputype).or_default() += 1;
        if object.cputype != arch.cpu_type() {
            report.failures.push(format!(
                "member {name}: CPU type {}, expected {}",
                cpu_type_name(object.cputype),
                arch.name()
            ));
        }
        match object.build_versions.as_slice() {
            [] => report.failures.push(format!("member {name}: no LC_BUILD_VERSION load command")),
            [_] => {}
            more => report.failures.push(format!(
                "member {name}: {} LC_BUILD_VERSION load commands, expected one",
                more.len()
            )),
        }
        for build_version in &object.build_versions {
            *report.build_versions.entry(*build_version).or_default() += 1;
            if build_version.platform != PLATFORM_DRIVERKIT {
                report.failures.push(format!(
                    "member {name}: LC_BUILD_VERSION platform {} ({}), expected driverkit ({})",
                    platform_name(build_version.platform),
                    build_version.platform,
                    PLATFORM_DRIVERKIT
                ));
            }
        }
    }

    for (symbol, referrers) in unresolved_symbols(members) {
        if ALLOWED_UNDEFINED.contains(&symbol) {
            report.allowed_undefined.insert(symbol.to_owned());
        } else {
            let referrers: Vec<&str> = referrers.into_iter().collect();
            report
                .failures
                .push(format!("undefined symbol {symbol}, referenced by {}", referrers.join(", ")));
        }
    }

    let mut libc_definitions: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for member in members {
        let Ok(object) = &member.object else { continue };
        for symbol in &object.defined {
            if ALLOWED_UNDEFINED.contains(&symbol.as_str()) {
                libc_definitions.entry(symbol).or_default().insert(&member.name);
            }
        }
    }
    for symbol in ALLOWED_UNDEFINED {
        if let Some(definers) = libc_definitions.get(symbol) {
            let definers: Vec<&str> = definers.iter().copied().collect();
            report.failures.push(format!(
                "the archive defines {symbol} (in {}), which must come from DriverKit's libc \
                 (compiler-builtins `mem` feature on?)",
                definers.join(", ")
            ));
        }
    }

    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(cputype: u32, platform: u32, defined: &[&str], undefined: &[&str]) -> ObjectInfo {
        ObjectInfo {
            cputype,
            build_versions: vec![BuildVersion { platform, minos: 20 << 16, sdk: 0 }],
            defined: defined.iter().map(|s| s.to_string()).collect(),
            undefined: undefined.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn member(name: &str, object: ObjectInfo) -> Member {
        Member { name: name.to_owned(), object: Ok(object) }
    }

    fn arm64(name: &str, defined: &[&str], undefined: &[&str]) -> Member {
        member(name, object(Arch::Arm64.cpu_type(), PLATFORM_DRIVERKIT, defined, undefined))
    }

    #[test]
    fn arch_names() {
        assert_eq!(Arch::from_name("arm64"), Some(Arch::Arm64));
        assert_eq!(Arch::from_name("aarch64"), Some(Arch::Arm64));
        assert_eq!(Arch::from_name("x86_64"), Some(Arch::X86_64));
        assert_eq!(Arch::from_name("x86-64"), Some(Arch::X86_64));
        assert_eq!(Arch::from_name("arm64e"), None);
        assert_eq!(Arch::Arm64.cpu_type(), 0x0100_000c);
        assert_eq!(Arch::X86_64.cpu_type(), 0x0100_0007);
        assert_eq!(cpu_type_name(0x0100_000c), "arm64");
        assert_eq!(cpu_type_name(0x0100_0007), "x86_64");
        assert_eq!(cpu_type_name(0x1234), "cputype 0x1234");
    }

    #[test]
    fn platform_decoding() {
        assert_eq!(PLATFORM_DRIVERKIT, 10);
        assert_eq!(platform_name(10), "driverkit");
        assert_eq!(platform_name(1), "macos");
        assert_eq!(platform_name(6), "maccatalyst");
        assert_eq!(platform_name(99), "unrecognised");
        assert_eq!(format_version(0x0014_0000), "20.0");
        assert_eq!(format_version(0x000b_0300), "11.3");
        assert_eq!(format_version(0x000a_0f06), "10.15.6");
        let bv = BuildVersion { platform: 10, minos: 0x0014_0000, sdk: 0 };
        assert_eq!(bv.to_string(), "driverkit (10), minos 20.0, sdk n/a");
    }

    #[test]
    fn references_between_members_resolve() {
        let members = [
            arm64("a.o", &["_dk_entry"], &["_helper", "_memcpy", "___udivti3"]),
            arm64("b.o", &["_helper", "___udivti3"], &["_memcpy", "_bcmp"]),
        ];
        let unresolved = unresolved_symbols(&members);
        let names: Vec<&str> = unresolved.keys().copied().collect();
        assert_eq!(names, ["_bcmp", "_memcpy"]);
        let memcpy_users: Vec<&str> = unresolved["_memcpy"].iter().copied().collect();
        assert_eq!(memcpy_users, ["a.o", "b.o"]);
    }

    #[test]
    fn members_that_are_not_objects_define_nothing() {
        let members = [
            arm64("a.o", &[], &["_helper"]),
            Member { name: "lib.rmeta".to_owned(), object: Err("not an object file".to_owned()) },
        ];
        assert!(unresolved_symbols(&members).contains_key("_helper"));
    }

    #[test]
    fn allow_listed_undefined_symbols_pass() {
        let members = [
            arm64("a.o", &["_dk_a"], &["_memcpy", "_memset", "_dk_b"]),
            arm64("b.o", &["_dk_b"], &["_memmove", "_memcmp", "_bzero"]),
        ];
        let report = check(&members, Arch::Arm64);
        assert!(report.passed(), "{:?}", report.failures);
        let allowed: Vec<&str> = report.allowed_undefined.iter().map(String::as_str).collect();
        assert_eq!(allowed, ["_bzero", "_memcmp", "_memcpy", "_memmove", "_memset"]);
        assert_eq!(report.member_count, 2);
        assert_eq!(report.cpu_types[&Arch::Arm64.cpu_type()], 2);
        let text = report.render("lib.a", Arch::Arm64);
        assert!(text.contains("driverkit (10), minos 20.0"), "{text}");
        assert!(text.contains("result:    OK"), "{text}");
    }

    #[test]
    fn other_undefined_symbols_fail_with_their_referrers() {
        let members = [
            arm64("a.o", &[], &["___chkstk_darwin", "_memcpy"]),
            arm64("b.o", &[], &["_bcmp", "___chkstk_darwin"]),
        ];
        let report = check(&members, Arch::Arm64);
        assert_eq!(
            report.failures,
            [
                "undefined symbol ___chkstk_darwin, referenced by a.o, b.o",
                "undefined symbol _bcmp, referenced by b.o",
            ]
        );
        assert!(report.render("lib.a", Arch::Arm64).contains("FAILED, 2 problem(s)"));
    }

    #[test]
    fn wrong_platform_cpu_or_build_version_count_fail() {
        let mut no_version = object(Arch::Arm64.cpu_type(), PLATFORM_DRIVERKIT, &[], &[]);
        no_version.build_versions.clear();
        let mut two_versions = object(Arch::Arm64.cpu_type(), PLATFORM_DRIVERKIT, &[], &[]);
        two_versions.build_versions.push(two_versions.build_versions[0]);
        let members = [
            member("macos.o", object(Arch::Arm64.cpu_type(), 1, &[], &[])),
            member("intel.o", object(Arch::X86_64.cpu_type(), PLATFORM_DRIVERKIT, &[], &[])),
            member("none.o", no_version),
            member("two.o", two_versions),
            arm64("good.o", &[], &[]),
        ];
        let report = check(&members, Arch::Arm64);
        assert_eq!(
            report.failures,
            [
                "member macos.o: LC_BUILD_VERSION platform macos (1), expected driverkit (10)",
                "member intel.o: CPU type x86_64, expected arm64",
                "member none.o: no LC_BUILD_VERSION load command",
                "member two.o: 2 LC_BUILD_VERSION load commands, expected one",
            ]
        );
    }

    #[test]
    fn defining_a_libc_symbol_fails() {
        let members = [
            arm64("a.o", &[], &["_memcpy"]),
            arm64("compiler_builtins.o", &["_memcpy", "_memset"], &[]),
        ];
        let report = check(&members, Arch::Arm64);
        assert_eq!(report.failures.len(), 2, "{:?}", report.failures);
        assert!(
            report.failures[0].starts_with("the archive defines _memcpy (in compiler_builtins.o)")
        );
        assert!(report.failures[1].starts_with("the archive defines _memset"));
    }

    #[test]
    fn empty_archive_and_unusable_members_fail() {
        assert_eq!(check(&[], Arch::X86_64).failures, ["the archive has no members"]);
        let members =
            [Member { name: "notes.txt".to_owned(), object: Err("not an object file".to_owned()) }];
        assert_eq!(
            check(&members, Arch::X86_64).failures,
            ["member notes.txt: not an object file"]
        );
    }

    /// A minimal little-endian Mach-O 64 relocatable object: header, one `LC_BUILD_VERSION`,
    /// `LC_SYMTAB`, nlists, string table. `symbols` are `(name, defined)`.
    fn macho_object(cputype: u32, platform: u32, symbols: &[(&str, bool)]) -> Vec<u8> {
        fn u32s(out: &mut Vec<u8>, values: &[u32]) {
            for value in values {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        let header_size = 32;
        let commands_size = 24 + 24;
        let symoff = header_size + commands_size;
        let nsyms = u32::try_from(symbols.len()).unwrap();
        let stroff = symoff + 16 * nsyms;
        let mut strings = vec![0u8];
        let mut nlists = Vec::new();
        for &(name, defined) in symbols {
            let strx = u32::try_from(strings.len()).unwrap();
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            u32s(&mut nlists, &[strx]);
            // N_SECT | N_EXT in section 1, or N_UNDF | N_EXT.
            nlists.extend_from_slice(if defined { &[0x0f, 1] } else { &[0x01, 0] });
            nlists.extend_from_slice(&0u16.to_le_bytes());
            nlists.extend_from_slice(&0u64.to_le_bytes());
        }
        // A local symbol and a stab, both of which must be ignored.
        let strx = u32::try_from(strings.len()).unwrap();
        strings.extend_from_slice(b"_local_undefined_looking\0");
        for n_type in [0x00u8, 0x24] {
            u32s(&mut nlists, &[strx]);
            nlists.extend_from_slice(&[n_type, 0]);
            nlists.extend_from_slice(&0u16.to_le_bytes());
            nlists.extend_from_slice(&0u64.to_le_bytes());
        }
        let nsyms = nsyms + 2;
        let stroff = stroff + 32;

        let mut out = Vec::new();
        // mach_header_64: magic, cputype, cpusubtype, filetype, ncmds, sizeofcmds, flags, reserved
        u32s(&mut out, &[0xfeed_facf, cputype, 0, 1, 2, commands_size, 0, 0]);
        // build_version_command: cmd, cmdsize, platform, minos, sdk, ntools
        u32s(&mut out, &[0x32, 24, platform, 0x0014_0000, 0, 0]);
        // symtab_command: cmd, cmdsize, symoff, nsyms, stroff, strsize
        let strsize = u32::try_from(strings.len()).unwrap();
        u32s(&mut out, &[0x2, 24, symoff, nsyms, stroff, strsize]);
        assert_eq!(out.len(), symoff as usize);
        out.extend_from_slice(&nlists);
        assert_eq!(out.len(), stroff as usize);
        out.extend_from_slice(&strings);
        out
    }

    /// A BSD-style `ar` archive without a symbol table.
    fn ar_archive(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = b"!<arch>\n".to_vec();
        for (name, data) in members {
            let header =
                format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", 0, 0, 0, 644, data.len());
            assert_eq!(header.len(), 60);
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            if out.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    #[test]
    fn reads_objects_from_an_archive() {
        let arm64 = Arch::Arm64.cpu_type();
        let archive = ar_archive(&[
            (
                "a.o",
                macho_object(
                    arm64,
                    PLATFORM_DRIVERKIT,
                    &[("_dk_a", true), ("_memcpy", false), ("_helper", false)],
                ),
            ),
            ("b.o", macho_object(arm64, PLATFORM_DRIVERKIT, &[("_helper", true)])),
            ("c.o", macho_object(arm64, 1, &[("_abort", false)])),
            ("readme", b"not an object, just some text\n".to_vec()),
        ]);
        let members = read_archive(&archive).unwrap();
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a.o", "b.o", "c.o", "readme"]);
        let a = members[0].object.as_ref().unwrap();
        assert_eq!(a.cputype, arm64);
        assert_eq!(a.build_versions, [BuildVersion { platform: 10, minos: 0x0014_0000, sdk: 0 }]);
        assert_eq!(a.defined, ["_dk_a"]);
        assert_eq!(a.undefined, ["_memcpy", "_helper"]);
        assert!(members[3].object.is_err());

        let report = check(&members, Arch::Arm64);
        assert_eq!(report.failures.len(), 3, "{:?}", report.failures);
        assert_eq!(
            report.failures[0],
            "member c.o: LC_BUILD_VERSION platform macos (1), expected driverkit (10)"
        );
        assert!(report.failures[1].starts_with("member readme: not an object file"));
        assert_eq!(report.failures[2], "undefined symbol _abort, referenced by c.o");
        assert!(report.allowed_undefined.contains("_memcpy"));
    }

    #[test]
    fn rejects_non_archives() {
        assert!(read_archive(b"\x7fELF not an archive").is_err());
    }
}
