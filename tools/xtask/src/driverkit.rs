//! `check-driverkit-lib <lib.a> [ARCH...]` and `make-universal <out.a> <thin.a>...`: inspect and
//! assemble the DriverKit static library built by `scripts/build-driverkit-lib.sh`.
//!
//! Xcode links `libdkraid.a` into the dext with ld64, which wants every object to say which
//! platform it was built for, and the dext may import nothing DriverKit's runtime does not export.
//! The library is universal (a fat file, [`crate::fat`]) with exactly one slice per
//! architecture — `arm64e` (what a dext on Apple silicon is: ld64 refuses to link an arm64 slice
//! into it) and `x86_64` — and every member of every slice must
//!
//! * be a 64-bit Mach-O relocatable object (`MH_OBJECT`) for the slice's CPU (`cputype` and
//!   `cpusubtype` without its capability bits; arm64e's carry the pointer-authentication ABI
//!   version, which is reported and must be the same in every object), and
//! * carry exactly one `LC_BUILD_VERSION` load command, with platform `PLATFORM_DRIVERKIT` (10)
//!   and a minimum OS of at least [`MIN_DRIVERKIT`] (20.4, the first DriverKit with
//!   SCSIControllerDriverKit);
//!
//! and the archive as a whole, once references between its own members are resolved, may leave
//! nothing undefined but the symbols in [`ALLOWED_UNDEFINED`], which DriverKit's libc provides. It
//! must not define those symbols either: a copy in the archive (compiler-builtins' `mem` feature)
//! would shadow DriverKit's own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;

use object::macho;

use crate::fat;
use object::read::archive::ArchiveFile;
use object::read::macho::{MachHeader as _, Nlist as _};
use object::{Endianness, FileKind};

/// The only symbols the archive may leave undefined: DriverKit's libc provides them, and LLVM
/// emits calls to them for copies, fills and comparisons (`bzero` for zero-fills on Darwin).
pub const ALLOWED_UNDEFINED: [&str; 5] = ["_memcpy", "_memmove", "_memset", "_memcmp", "_bzero"];

/// `PLATFORM_DRIVERKIT` from `<mach-o/loader.h>`.
pub const PLATFORM_DRIVERKIT: u32 = macho::PLATFORM_DRIVERKIT.0;

/// The lowest DriverKit deployment target the objects may record: 20.4 (macOS 11.3) brought
/// SCSIControllerDriverKit, so a dext of this family cannot load on anything older.
pub const MIN_DRIVERKIT: u32 = 20 << 16 | 4 << 8;

/// The slices the universal library must have, exactly.
pub const UNIVERSAL_ARCHS: [Arch; 2] = [Arch::Arm64e, Arch::X86_64];

/// `CPU_SUBTYPE_ARM64_ALL`, `CPU_SUBTYPE_ARM64E`, `CPU_SUBTYPE_X86_64_ALL`.
const CPU_SUBTYPE_ARM64_ALL: u32 = 0;
const CPU_SUBTYPE_ARM64E: u32 = 2;
const CPU_SUBTYPE_X86_64_ALL: u32 = 3;
/// arm64e's capability bits (`<mach/machine.h>`): the pointer-authentication ABI is versioned,
/// the version, and whether it is the kernel's ABI.
const CPU_SUBTYPE_ARM64E_VERSIONED_ABI: u32 = 0x8000_0000;
const CPU_SUBTYPE_ARM64E_KERNEL_ABI: u32 = 0x4000_0000;
const CPU_SUBTYPE_ARM64E_PTRAUTH_VERSION_MASK: u32 = 0x0f00_0000;

const USAGE: &str = "usage: cargo run -p xtask -- check-driverkit-lib <lib.a> [arm64e|x86_64]...\n\
                     \x20      (a universal library: the slices expected, default arm64e x86_64;\n\
                     \x20       a thin one: its architecture)";
const MAKE_USAGE: &str = "usage: cargo run -p xtask -- make-universal <out.a> <thin.a>...";

/// Entry point of the `check-driverkit-lib` subcommand; `args` are the arguments after its name.
///
/// Exits 0 when the library passes, 1 when it was inspected and fails a check, 2 when it could
/// not be inspected at all (bad arguments, unreadable file, not an archive or universal file).
pub fn main(args: &[String]) -> ExitCode {
    let Some((path, arch_names)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let mut archs = Vec::new();
    for name in arch_names {
        let Some(arch) = Arch::from_name(name) else {
            eprintln!(
                "check-driverkit-lib: unknown architecture `{name}` (expected arm64e or x86_64)"
            );
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        };
        if archs.contains(&arch) {
            eprintln!("check-driverkit-lib: architecture `{name}` named twice");
            return ExitCode::from(2);
        }
        archs.push(arch);
    }
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(err) => {
            eprintln!("check-driverkit-lib: cannot read {path}: {err}");
            return ExitCode::from(2);
        }
    };
    let (passed, text) = if fat::is_fat(&data) {
        let expected = if archs.is_empty() { UNIVERSAL_ARCHS.to_vec() } else { archs };
        match check_universal(&data, &expected) {
            Ok(report) => (report.passed(), report.render(path, &expected)),
            Err(err) => {
                eprintln!("check-driverkit-lib: {path}: {err}");
                return ExitCode::from(2);
            }
        }
    } else {
        let [arch] = archs[..] else {
            eprintln!(
                "check-driverkit-lib: {path} is a thin library (not universal): name its one \
                 architecture"
            );
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        };
        let members = match read_archive(&data) {
            Ok(members) => members,
            Err(err) => {
                eprintln!("check-driverkit-lib: {path}: {err}");
                return ExitCode::from(2);
            }
        };
        let report = check(&members, arch);
        (report.passed(), report.render(path, arch))
    };
    print!("{text}");
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Entry point of `make-universal <out.a> <thin.a>...`: writes the universal library of the
/// thin ones, each slice's CPU taken from its objects (they must agree).
pub fn make_universal_main(args: &[String]) -> ExitCode {
    let [out, inputs @ ..] = args else {
        eprintln!("{MAKE_USAGE}");
        return ExitCode::from(2);
    };
    if inputs.is_empty() {
        eprintln!("{MAKE_USAGE}");
        return ExitCode::from(2);
    }
    let mut datas = Vec::new();
    for input in inputs {
        match std::fs::read(input) {
            Ok(data) => datas.push(data),
            Err(err) => {
                eprintln!("make-universal: cannot read {input}: {err}");
                return ExitCode::from(2);
            }
        }
    }
    let named: Vec<(&str, &[u8])> =
        inputs.iter().map(String::as_str).zip(datas.iter().map(Vec::as_slice)).collect();
    let file = match make_universal(&named) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("make-universal: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = std::fs::write(out, &file) {
        eprintln!("make-universal: cannot write {out}: {err}");
        return ExitCode::FAILURE;
    }
    println!("make-universal: wrote {out} ({} bytes, {} slices)", file.len(), inputs.len());
    ExitCode::SUCCESS
}

/// The universal file of the thin static libraries `inputs` (name, bytes), in that order.
pub fn make_universal(inputs: &[(&str, &[u8])]) -> Result<Vec<u8>, String> {
    let mut slices = Vec::new();
    for &(name, data) in inputs {
        if fat::is_fat(data) {
            return Err(format!("{name} is already universal; give thin libraries"));
        }
        let members = read_archive(data).map_err(|err| format!("{name}: {err}"))?;
        let (cputype, cpusubtype) =
            archive_cpu(&members).map_err(|err| format!("{name}: {err}"))?;
        slices.push(fat::SliceIn { cputype, cpusubtype, data });
    }
    fat::write(&slices, fat::DEFAULT_ALIGN).map_err(|err| err.to_string())
}

/// The one CPU (`cputype`, full `cpusubtype`) of an archive's objects.
pub fn archive_cpu(members: &[Member]) -> Result<(u32, u32), String> {
    let cpus: BTreeSet<(u32, u32)> = members
        .iter()
        .filter_map(|member| member.object.as_ref().ok())
        .map(|object| (object.cputype, object.cpusubtype))
        .collect();
    match cpus.len() {
        1 => Ok(cpus.into_iter().next().unwrap_or_default()),
        0 => Err("no Mach-O object in the archive to take its CPU from".to_owned()),
        _ => {
            let names: Vec<String> =
                cpus.iter().map(|&(cputype, sub)| cpu_name(cputype, sub)).collect();
            Err(format!("its objects are for different CPUs: {}", names.join(", ")))
        }
    }
}

/// The CPU a DriverKit library is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arch {
    /// Plain arm64: what a dext is not (kept to name a wrong slice).
    Arm64,
    /// arm64 with pointer authentication: every dext on Apple silicon.
    Arm64e,
    X86_64,
}

impl Arch {
    /// Parses the architecture as the build script names it (`arm64e`, `x86_64`, `arm64`),
    /// also accepting Rust's spellings (`aarch64`, `x86-64`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "arm64" | "aarch64" => Some(Self::Arm64),
            "arm64e" => Some(Self::Arm64e),
            "x86_64" | "x86-64" => Some(Self::X86_64),
            _ => None,
        }
    }

    /// The Mach-O `cputype` its objects must carry.
    pub fn cpu_type(self) -> u32 {
        match self {
            Self::Arm64 | Self::Arm64e => macho::CPU_TYPE_ARM64.0,
            Self::X86_64 => macho::CPU_TYPE_X86_64.0,
        }
    }

    /// The `cpusubtype` its objects must carry, capability bits masked off.
    pub fn cpu_subtype(self) -> u32 {
        match self {
            Self::Arm64 => CPU_SUBTYPE_ARM64_ALL,
            Self::Arm64e => CPU_SUBTYPE_ARM64E,
            Self::X86_64 => CPU_SUBTYPE_X86_64_ALL,
        }
    }

    /// Whether an object's `cputype`/`cpusubtype` are this architecture's.
    pub fn matches(self, cputype: u32, cpusubtype: u32) -> bool {
        cputype == self.cpu_type() && cpusubtype & !fat::CPU_SUBTYPE_MASK == self.cpu_subtype()
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Arm64 => "arm64",
            Self::Arm64e => "arm64e",
            Self::X86_64 => "x86_64",
        }
    }
}

/// Names a CPU by `cputype` and `cpusubtype` (capability bits ignored): `arm64e`, `x86_64`, …
pub fn cpu_name(cputype: u32, cpusubtype: u32) -> String {
    [Arch::Arm64, Arch::Arm64e, Arch::X86_64]
        .into_iter()
        .find(|arch| arch.matches(cputype, cpusubtype))
        .map(|arch| arch.name().to_owned())
        .unwrap_or_else(|| format!("{} (cpusubtype {cpusubtype:#x})", cpu_type_name(cputype)))
}

/// What arm64e's `cpusubtype` capability bits say about pointer authentication.
pub fn ptrauth_abi(cpusubtype: u32) -> String {
    if cpusubtype & CPU_SUBTYPE_ARM64E_VERSIONED_ABI == 0 {
        return "unversioned".to_owned();
    }
    let version = (cpusubtype & CPU_SUBTYPE_ARM64E_PTRAUTH_VERSION_MASK) >> 24;
    let abi = if cpusubtype & CPU_SUBTYPE_ARM64E_KERNEL_ABI != 0 { "kernel" } else { "user" };
    format!("version {version} ({abi})")
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
    /// With its capability bits.
    pub cpusubtype: u32,
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
    let mut info = ObjectInfo {
        cputype: header.cputype(endian).0,
        cpusubtype: header.cpusubtype(endian).0,
        ..ObjectInfo::default()
    };
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
    /// How many members carry each CPU (`cputype`, full `cpusubtype`).
    pub cpu_types: BTreeMap<(u32, u32), usize>,
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
        for (&(cputype, cpusubtype), count) in &self.cpu_types {
            let ptrauth = if Arch::Arm64e.matches(cputype, cpusubtype) {
                format!(", pointer authentication ABI {}", ptrauth_abi(cpusubtype))
            } else {
                String::new()
            };
            line(format!(
                "  cpu:       {}{ptrauth} ({count} members)",
                cpu_name(cputype, cpusubtype)
            ));
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
        *report.cpu_types.entry((object.cputype, object.cpusubtype)).or_default() += 1;
        if !arch.matches(object.cputype, object.cpusubtype) {
            report.failures.push(format!(
                "member {name}: CPU type {}, expected {}",
                cpu_name(object.cputype, object.cpusubtype),
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
            } else if build_version.minos < MIN_DRIVERKIT {
                report.failures.push(format!(
                    "member {name}: minimum DriverKit {}, below {} (SCSIControllerDriverKit \
                     needs DriverKit 20.4)",
                    format_version(build_version.minos),
                    format_version(MIN_DRIVERKIT)
                ));
            }
        }
    }

    // ld64 refuses to mix arm64e objects of different pointer-authentication ABIs.
    let arm64e_abis: BTreeSet<u32> = report
        .cpu_types
        .keys()
        .filter(|&&(cputype, cpusubtype)| Arch::Arm64e.matches(cputype, cpusubtype))
        .map(|&(_, cpusubtype)| cpusubtype)
        .collect();
    if arm64e_abis.len() > 1 {
        let abis: Vec<String> = arm64e_abis.iter().map(|&s| ptrauth_abi(s)).collect();
        report.failures.push(format!(
            "arm64e objects of different pointer authentication ABIs: {}",
            abis.join(", ")
        ));
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

/// The outcome of [`check_universal`]: the fat header's problems and each slice's [`Report`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UniversalReport {
    /// Per slice, in header order: its CPU from the fat header and, when it is one of the
    /// expected architectures, the check of its archive.
    pub slices: Vec<(fat::FatArch, Option<(Arch, Report)>)>,
    /// Problems with the set of slices or a slice that could not be read as a library.
    pub failures: Vec<String>,
}

impl UniversalReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
            && self
                .slices
                .iter()
                .all(|(_, checked)| checked.as_ref().is_some_and(|(_, r)| r.passed()))
    }

    /// The human-readable report the subcommand prints.
    pub fn render(&self, path: &str, expected: &[Arch]) -> String {
        let names: Vec<&str> = expected.iter().map(|arch| arch.name()).collect();
        let mut out = format!(
            "check-driverkit-lib: {path}: universal, {} slice(s) (expecting exactly {})\n",
            self.slices.len(),
            names.join(" + ")
        );
        for (arch, checked) in &self.slices {
            out.push_str(&format!(
                "  slice {} at offset {}, {} bytes, align 2^{}\n",
                cpu_name(arch.cputype, arch.cpusubtype),
                arch.offset,
                arch.size,
                arch.align
            ));
            if let Some((arch, report)) = checked {
                let slice_path = format!("{path} [{}]", arch.name());
                for line in report.render(&slice_path, *arch).lines() {
                    out.push_str(&format!("    {line}\n"));
                }
            }
        }
        if self.passed() {
            out.push_str("  universal: OK\n");
        } else {
            let failed: usize = self.failures.len()
                + self
                    .slices
                    .iter()
                    .filter(|(_, c)| c.as_ref().is_some_and(|(_, r)| !r.passed()))
                    .count();
            out.push_str(&format!("  universal: FAILED, {failed} problem(s):\n"));
            for failure in &self.failures {
                out.push_str(&format!("    - {failure}\n"));
            }
            for (_, checked) in &self.slices {
                if let Some((arch, report)) = checked {
                    if !report.passed() {
                        out.push_str(&format!(
                            "    - slice {}: {} problem(s), listed above\n",
                            arch.name(),
                            report.failures.len()
                        ));
                    }
                }
            }
        }
        out
    }
}

/// Checks a universal library: its slices are exactly `expected` (no missing, extra or
/// duplicate slice) and each slice is a library passing [`check`] for its architecture, whose
/// objects are for the CPU the fat header names. Fails (`Err`) only when the fat header itself
/// cannot be read.
pub fn check_universal(data: &[u8], expected: &[Arch]) -> Result<UniversalReport, fat::FatError> {
    let slices = fat::read(data)?;
    let mut report = UniversalReport::default();
    let mut found = Vec::new();
    for slice in &slices {
        let fat_arch = slice.arch;
        let header_cpu = cpu_name(fat_arch.cputype, fat_arch.cpusubtype);
        let arch =
            expected.iter().copied().find(|a| a.matches(fat_arch.cputype, fat_arch.cpusubtype));
        let Some(arch) = arch else {
            report.failures.push(format!("unexpected slice {header_cpu}"));
            report.slices.push((fat_arch, None));
            continue;
        };
        found.push(arch);
        let members = match read_archive(slice.data) {
            Ok(members) => members,
            Err(err) => {
                report.failures.push(format!("slice {header_cpu}: {err}"));
                report.slices.push((fat_arch, None));
                continue;
            }
        };
        let mut checked = check(&members, arch);
        if let Ok((_, cpusubtype)) = archive_cpu(&members) {
            if arch == Arch::Arm64e && cpusubtype != fat_arch.cpusubtype {
                checked.failures.push(format!(
                    "the fat header says cpusubtype {:#x} (pointer authentication ABI {}), the \
                     objects {cpusubtype:#x} ({})",
                    fat_arch.cpusubtype,
                    ptrauth_abi(fat_arch.cpusubtype),
                    ptrauth_abi(cpusubtype)
                ));
            }
        }
        report.slices.push((fat_arch, Some((arch, checked))));
    }
    for arch in expected {
        if !found.contains(arch) {
            report.failures.push(format!("no {} slice", arch.name()));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DriverKit 20.4, as the build script sets it.
    const MINOS: u32 = 0x0014_0400;
    /// arm64e objects as rustc writes them: versioned pointer-authentication ABI, version 0.
    const ARM64E_SUBTYPE: u32 = 0x8000_0002;

    fn arch_object(arch: Arch, platform: u32, defined: &[&str], undefined: &[&str]) -> ObjectInfo {
        let cpusubtype = if arch == Arch::Arm64e { ARM64E_SUBTYPE } else { arch.cpu_subtype() };
        ObjectInfo { cpusubtype, ..object(arch.cpu_type(), platform, defined, undefined) }
    }

    fn object(cputype: u32, platform: u32, defined: &[&str], undefined: &[&str]) -> ObjectInfo {
        ObjectInfo {
            cputype,
            cpusubtype: 0,
            build_versions: vec![BuildVersion { platform, minos: MINOS, sdk: 0 }],
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

    fn arm64e(name: &str, defined: &[&str], undefined: &[&str]) -> Member {
        member(name, arch_object(Arch::Arm64e, PLATFORM_DRIVERKIT, defined, undefined))
    }

    #[test]
    fn arch_names() {
        assert_eq!(Arch::from_name("arm64"), Some(Arch::Arm64));
        assert_eq!(Arch::from_name("aarch64"), Some(Arch::Arm64));
        assert_eq!(Arch::from_name("x86_64"), Some(Arch::X86_64));
        assert_eq!(Arch::from_name("x86-64"), Some(Arch::X86_64));
        assert_eq!(Arch::from_name("arm64e"), Some(Arch::Arm64e));
        assert_eq!(Arch::from_name("arm64_32"), None);
        assert_eq!(Arch::Arm64.cpu_type(), 0x0100_000c);
        assert_eq!(Arch::Arm64e.cpu_type(), 0x0100_000c);
        assert!(Arch::Arm64e.matches(0x0100_000c, 2));
        assert!(Arch::Arm64e.matches(0x0100_000c, ARM64E_SUBTYPE), "capability bits masked");
        assert!(!Arch::Arm64e.matches(0x0100_000c, 0));
        assert!(!Arch::Arm64.matches(0x0100_000c, 2));
        assert!(Arch::X86_64.matches(0x0100_0007, 0x8000_0003));
        assert_eq!(cpu_name(0x0100_000c, ARM64E_SUBTYPE), "arm64e");
        assert_eq!(cpu_name(0x0100_000c, 0), "arm64");
        assert_eq!(cpu_name(0x0100_000c, 1), "arm64 (cpusubtype 0x1)");
        assert_eq!(ptrauth_abi(ARM64E_SUBTYPE), "version 0 (user)");
        assert_eq!(ptrauth_abi(0xc100_0002), "version 1 (kernel)");
        assert_eq!(ptrauth_abi(2), "unversioned");
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
        assert_eq!(report.cpu_types[&(Arch::Arm64.cpu_type(), 0)], 2);
        let text = report.render("lib.a", Arch::Arm64);
        assert!(text.contains("driverkit (10), minos 20.4"), "{text}");
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
            member("intel.o", arch_object(Arch::X86_64, PLATFORM_DRIVERKIT, &[], &[])),
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
        macho_object_for(cputype, 0, platform, MINOS, symbols)
    }

    fn macho_object_for(
        cputype: u32,
        cpusubtype: u32,
        platform: u32,
        minos: u32,
        symbols: &[(&str, bool)],
    ) -> Vec<u8> {
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
        u32s(&mut out, &[0xfeed_facf, cputype, cpusubtype, 1, 2, commands_size, 0, 0]);
        // build_version_command: cmd, cmdsize, platform, minos, sdk, ntools
        u32s(&mut out, &[0x32, 24, platform, minos, 0, 0]);
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
        assert_eq!(a.build_versions, [BuildVersion { platform: 10, minos: MINOS, sdk: 0 }]);
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

    #[test]
    fn an_old_deployment_target_fails() {
        let mut old = arch_object(Arch::X86_64, PLATFORM_DRIVERKIT, &[], &[]);
        old.build_versions[0].minos = 0x0014_0000;
        let report = check(&[member("old.o", old)], Arch::X86_64);
        assert_eq!(
            report.failures,
            ["member old.o: minimum DriverKit 20.0, below 20.4 (SCSIControllerDriverKit needs \
                 DriverKit 20.4)"]
        );
    }

    #[test]
    fn arm64e_objects_and_their_ptrauth_abi() {
        let members = [arm64e("a.o", &["_dk_a"], &["_memcpy"]), arm64e("b.o", &[], &["_dk_a"])];
        let report = check(&members, Arch::Arm64e);
        assert!(report.passed(), "{:?}", report.failures);
        let text = report.render("lib.a", Arch::Arm64e);
        assert!(
            text.contains(
                "cpu:       arm64e, pointer authentication ABI version 0 (user) (2 members)"
            ),
            "{text}"
        );
        // Plain arm64 objects are not arm64e (ld64 would refuse them in an arm64e dext)...
        let report = check(&[arm64("plain.o", &[], &[])], Arch::Arm64e);
        assert_eq!(report.failures, ["member plain.o: CPU type arm64, expected arm64e"]);
        // ... and arm64e objects are not arm64.
        let report = check(&[arm64e("e.o", &[], &[])], Arch::Arm64);
        assert_eq!(report.failures, ["member e.o: CPU type arm64e, expected arm64"]);
        // Two pointer-authentication ABIs in one slice.
        let mut other = arch_object(Arch::Arm64e, PLATFORM_DRIVERKIT, &[], &[]);
        other.cpusubtype = 0x8100_0002;
        let report = check(&[arm64e("a.o", &[], &[]), member("b.o", other)], Arch::Arm64e);
        assert_eq!(
            report.failures,
            ["arm64e objects of different pointer authentication ABIs: version 0 (user), \
                 version 1 (user)"]
        );
    }

    const ARM64: u32 = 0x0100_000c;
    const X86_64: u32 = 0x0100_0007;

    /// A thin library for `arch` whose one object defines `_dk_entry` and imports `undefined`.
    fn thin(arch: Arch, platform: u32, undefined: &[&str]) -> Vec<u8> {
        let subtype = if arch == Arch::Arm64e { ARM64E_SUBTYPE } else { arch.cpu_subtype() };
        let mut symbols = vec![("_dk_entry", true)];
        symbols.extend(undefined.iter().map(|&name| (name, false)));
        let object = macho_object_for(arch.cpu_type(), subtype, platform, MINOS, &symbols);
        ar_archive(&[("dkraid.o", object)])
    }

    fn universal(libs: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let inputs: Vec<(&str, &[u8])> =
            libs.iter().map(|(name, data)| (*name, data.as_slice())).collect();
        make_universal(&inputs).unwrap()
    }

    #[test]
    fn a_universal_library_of_arm64e_and_x86_64_passes() {
        let file = universal(&[
            ("arm64e.a", thin(Arch::Arm64e, PLATFORM_DRIVERKIT, &["_memcpy"])),
            ("x86_64.a", thin(Arch::X86_64, PLATFORM_DRIVERKIT, &["_memset"])),
        ]);
        let slices = fat::read(&file).unwrap();
        assert_eq!(slices[0].arch.cputype, ARM64);
        assert_eq!(slices[0].arch.cpusubtype, ARM64E_SUBTYPE, "the objects' subtype, bits kept");
        assert_eq!(slices[1].arch.cputype, X86_64);
        assert_eq!(slices[1].arch.cpusubtype, 3);
        let report = check_universal(&file, &UNIVERSAL_ARCHS).unwrap();
        let text = report.render("libdkraid.a", &UNIVERSAL_ARCHS);
        assert!(report.passed(), "{text}");
        assert!(
            text.contains("universal, 2 slice(s) (expecting exactly arm64e + x86_64)"),
            "{text}"
        );
        assert!(text.contains("slice arm64e at offset 16384"), "{text}");
        assert!(text.contains("pointer authentication ABI version 0 (user)"), "{text}");
        assert!(text.contains("libdkraid.a [x86_64] (expecting x86_64"), "{text}");
        assert!(text.ends_with("  universal: OK\n"), "{text}");
    }

    #[test]
    fn a_missing_extra_or_wrong_slice_fails() {
        // arm64 instead of arm64e.
        let file = universal(&[
            ("arm64.a", thin(Arch::Arm64, PLATFORM_DRIVERKIT, &[])),
            ("x86_64.a", thin(Arch::X86_64, PLATFORM_DRIVERKIT, &[])),
        ]);
        let report = check_universal(&file, &UNIVERSAL_ARCHS).unwrap();
        assert_eq!(report.failures, ["unexpected slice arm64", "no arm64e slice"]);
        assert!(!report.passed());
        let text = report.render("lib.a", &UNIVERSAL_ARCHS);
        assert!(text.contains("universal: FAILED, 2 problem(s)"), "{text}");
        // Only one slice.
        let file = universal(&[("x86_64.a", thin(Arch::X86_64, PLATFORM_DRIVERKIT, &[]))]);
        let report = check_universal(&file, &UNIVERSAL_ARCHS).unwrap();
        assert_eq!(report.failures, ["no arm64e slice"]);
        // ... which passes when that is what was asked for.
        assert!(check_universal(&file, &[Arch::X86_64]).unwrap().passed());
    }

    #[test]
    fn a_bad_slice_fails_with_its_problems() {
        let file = universal(&[
            ("arm64e.a", thin(Arch::Arm64e, 1, &["_abort"])),
            ("x86_64.a", thin(Arch::X86_64, PLATFORM_DRIVERKIT, &[])),
        ]);
        let report = check_universal(&file, &UNIVERSAL_ARCHS).unwrap();
        assert!(!report.passed());
        let (_, Some((arch, slice))) = &report.slices[0] else { panic!("{report:?}") };
        assert_eq!(*arch, Arch::Arm64e);
        assert_eq!(
            slice.failures,
            [
                "member dkraid.o: LC_BUILD_VERSION platform macos (1), expected driverkit (10)",
                "undefined symbol _abort, referenced by dkraid.o",
            ]
        );
        let text = report.render("lib.a", &UNIVERSAL_ARCHS);
        assert!(text.contains("- slice arm64e: 2 problem(s), listed above"), "{text}");
    }

    #[test]
    fn a_slice_that_is_not_a_library_or_disagrees_with_the_header_fails() {
        let lib = thin(Arch::X86_64, PLATFORM_DRIVERKIT, &[]);
        let file = fat::write(
            &[
                fat::SliceIn { cputype: ARM64, cpusubtype: 2, data: b"not an archive" },
                fat::SliceIn { cputype: X86_64, cpusubtype: 3, data: &lib },
            ],
            fat::DEFAULT_ALIGN,
        )
        .unwrap();
        let report = check_universal(&file, &UNIVERSAL_ARCHS).unwrap();
        assert_eq!(report.failures.len(), 1);
        assert!(report.failures[0].starts_with("slice arm64e: not a static library"), "{report:?}");

        // The header says unversioned arm64e, the objects are versioned.
        let arm64e = thin(Arch::Arm64e, PLATFORM_DRIVERKIT, &[]);
        let file = fat::write(
            &[
                fat::SliceIn { cputype: ARM64, cpusubtype: 2, data: &arm64e },
                fat::SliceIn { cputype: X86_64, cpusubtype: 3, data: &lib },
            ],
            fat::DEFAULT_ALIGN,
        )
        .unwrap();
        let report = check_universal(&file, &UNIVERSAL_ARCHS).unwrap();
        let (_, Some((_, slice))) = &report.slices[0] else { panic!("{report:?}") };
        assert_eq!(
            slice.failures,
            ["the fat header says cpusubtype 0x2 (pointer authentication ABI unversioned), \
                 the objects 0x80000002 (version 0 (user))"]
        );
        // An unreadable fat header is an error, not a report.
        assert_eq!(
            check_universal(&file[..20], &UNIVERSAL_ARCHS),
            Err(fat::FatError::Truncated { needed: 48, have: 20 })
        );
    }

    #[test]
    fn make_universal_refuses_mixed_or_fat_inputs() {
        let mixed = ar_archive(&[
            ("a.o", macho_object_for(ARM64, 0, PLATFORM_DRIVERKIT, MINOS, &[])),
            ("b.o", macho_object_for(X86_64, 3, PLATFORM_DRIVERKIT, MINOS, &[])),
        ]);
        assert_eq!(
            make_universal(&[("mixed.a", &mixed)]),
            Err("mixed.a: its objects are for different CPUs: x86_64, arm64".to_owned())
        );
        let empty = ar_archive(&[("readme", b"text\n".to_vec())]);
        assert_eq!(
            make_universal(&[("empty.a", &empty)]),
            Err("empty.a: no Mach-O object in the archive to take its CPU from".to_owned())
        );
        let x86 = thin(Arch::X86_64, PLATFORM_DRIVERKIT, &[]);
        let fat_file = universal(&[("x86_64.a", x86.clone())]);
        assert_eq!(
            make_universal(&[("fat.a", &fat_file)]),
            Err("fat.a is already universal; give thin libraries".to_owned())
        );
        assert!(make_universal(&[("a.a", &x86), ("b.a", &x86)])
            .unwrap_err()
            .starts_with("slices 0 and 1 are both for cputype 0x1000007"));
    }
}
