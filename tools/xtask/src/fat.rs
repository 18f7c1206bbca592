//! Mach-O universal ("fat") files: what `lipo -create` writes and what ld64 reads, done here so
//! that building the universal DriverKit library needs no lipo (Linux has none).
//!
//! The format (`<mach-o/fat.h>`), all big-endian:
//!
//! ```text
//! fat_header  { magic: 0xcafebabe (FAT_MAGIC) or 0xcafebabf (FAT_MAGIC_64), nfat_arch }
//! fat_arch    { cputype, cpusubtype, offset: u32, size: u32, align: u32 }           × nfat_arch
//! fat_arch_64 { cputype, cpusubtype, offset: u64, size: u64, align: u32, reserved } (FAT_MAGIC_64)
//! ```
//!
//! followed by the slices, each at an offset that is a multiple of `2^align`. A slice is a
//! whole thin file (here a static library, an `ar` archive); `cputype`/`cpusubtype` say which
//! CPU it is for, and no two slices may be for the same CPU (`cpusubtype` compared without its
//! capability bits, [`CPU_SUBTYPE_MASK`]). [`write`] produces `FAT_MAGIC` files; [`read`] accepts
//! both magics and rejects anything malformed with a [`FatError`] naming what is wrong.

use std::fmt;

/// `FAT_MAGIC`: a universal file with 32-bit offsets and sizes.
pub const FAT_MAGIC: u32 = 0xcafe_babe;
/// `FAT_MAGIC_64`: a universal file with 64-bit offsets and sizes.
pub const FAT_MAGIC_64: u32 = 0xcafe_babf;
/// The capability bits of a `cpusubtype` (`CPU_SUBTYPE_MASK`), ignored when two are compared.
pub const CPU_SUBTYPE_MASK: u32 = 0xff00_0000;
/// The alignment [`write`] gives every slice: 2^14 = 16 KiB, the arm64 page size, as lipo does.
pub const DEFAULT_ALIGN: u32 = 14;
/// More slices than this is not a universal file (`0xcafebabe` is also a Java class file's
/// magic; lipo and ld64 tell them apart the same way: a class file's version is at least 45).
pub const MAX_SLICES: u32 = 32;
/// The largest alignment accepted, 2^15 (lipo's limit, `MAXSECTALIGN`).
pub const MAX_ALIGN: u32 = 15;

const HEADER_SIZE: usize = 8;
const ARCH_SIZE: usize = 20;
const ARCH_64_SIZE: usize = 32;

/// One slice of a universal file: where it is and which CPU it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FatArch {
    pub cputype: u32,
    /// With its capability bits (e.g. arm64e's pointer-authentication ABI version).
    pub cpusubtype: u32,
    pub offset: u64,
    pub size: u64,
    /// log2 of the slice's alignment.
    pub align: u32,
}

impl FatArch {
    /// The CPU as compared between slices: `cputype` and `cpusubtype` without capability bits.
    pub fn cpu(&self) -> (u32, u32) {
        (self.cputype, self.cpusubtype & !CPU_SUBTYPE_MASK)
    }

    fn end(&self) -> u64 {
        self.offset.saturating_add(self.size)
    }
}

/// A slice [`read`] found: its header entry and its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice<'a> {
    pub arch: FatArch,
    pub data: &'a [u8],
}

/// A slice to [`write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceIn<'a> {
    pub cputype: u32,
    pub cpusubtype: u32,
    pub data: &'a [u8],
}

/// Why a universal file could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FatError {
    /// The first four bytes are not `FAT_MAGIC` or `FAT_MAGIC_64`.
    BadMagic(u32),
    /// The file ends before the header (or the arch table) does.
    Truncated { needed: u64, have: u64 },
    /// `nfat_arch` is 0.
    NoSlices,
    /// `nfat_arch` is implausibly large (a Java class file, or garbage).
    TooManySlices(u32),
    /// A slice's offset and size reach past the end of the file.
    SliceOutOfBounds { index: usize, offset: u64, size: u64, file_size: u64 },
    /// A slice starts inside the header and arch table.
    SliceOverlapsHeader { index: usize, offset: u64, header_end: u64 },
    /// Two slices share bytes.
    SlicesOverlap { first: usize, second: usize },
    /// A slice's offset is not a multiple of its alignment.
    Misaligned { index: usize, offset: u64, align: u32 },
    /// An alignment above [`MAX_ALIGN`].
    AlignTooLarge { index: usize, align: u32 },
    /// Two slices are for the same CPU.
    DuplicateCpu { first: usize, second: usize, cputype: u32, cpusubtype: u32 },
    /// A slice with no bytes.
    EmptySlice { index: usize },
    /// [`write`]: the file would be too large for `FAT_MAGIC`'s 32-bit offsets.
    TooLarge { size: u64 },
}

impl fmt::Display for FatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FatError::BadMagic(magic) => write!(
                f,
                "not a universal (fat) file: magic {magic:#010x}, expected {FAT_MAGIC:#010x} or \
                 {FAT_MAGIC_64:#010x}"
            ),
            FatError::Truncated { needed, have } => write!(
                f,
                "truncated universal file: its header needs {needed} bytes, the file has {have}"
            ),
            FatError::NoSlices => write!(f, "universal file with no slices (nfat_arch = 0)"),
            FatError::TooManySlices(n) => write!(
                f,
                "nfat_arch = {n} is more than {MAX_SLICES}: not a universal file (a Java class \
                 file has the same magic)"
            ),
            FatError::SliceOutOfBounds { index, offset, size, file_size } => write!(
                f,
                "slice {index} (offset {offset}, size {size}) ends past the end of the file \
                 ({file_size} bytes)"
            ),
            FatError::SliceOverlapsHeader { index, offset, header_end } => write!(
                f,
                "slice {index} starts at {offset}, inside the fat header (which ends at \
                 {header_end})"
            ),
            FatError::SlicesOverlap { first, second } => {
                write!(f, "slices {first} and {second} overlap")
            }
            FatError::Misaligned { index, offset, align } => write!(
                f,
                "slice {index} at offset {offset} is not aligned to 2^{align} = {}",
                1u64 << align
            ),
            FatError::AlignTooLarge { index, align } => {
                write!(f, "slice {index} has alignment 2^{align}, more than 2^{MAX_ALIGN}")
            }
            FatError::DuplicateCpu { first, second, cputype, cpusubtype } => write!(
                f,
                "slices {first} and {second} are both for cputype {cputype:#x} cpusubtype \
                 {cpusubtype:#x}"
            ),
            FatError::EmptySlice { index } => write!(f, "slice {index} is empty"),
            FatError::TooLarge { size } => {
                write!(f, "a universal file of {size} bytes does not fit 32-bit fat offsets")
            }
        }
    }
}

impl std::error::Error for FatError {}

/// Whether `data` starts like a universal file (either magic, big-endian).
pub fn is_fat(data: &[u8]) -> bool {
    matches!(be32(data, 0), Some(FAT_MAGIC | FAT_MAGIC_64))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

fn be64(data: &[u8], at: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Reads a universal file's header and returns its slices in header order, after checking
/// that every slice lies inside the file, after the header, aligned, without overlapping
/// another, and for a CPU no other slice is for.
pub fn read(data: &[u8]) -> Result<Vec<Slice<'_>>, FatError> {
    let file_size = data.len() as u64;
    let truncated = |needed: usize| FatError::Truncated { needed: needed as u64, have: file_size };
    let magic = be32(data, 0).ok_or(truncated(HEADER_SIZE))?;
    let arch_size = match magic {
        FAT_MAGIC => ARCH_SIZE,
        FAT_MAGIC_64 => ARCH_64_SIZE,
        other => return Err(FatError::BadMagic(other)),
    };
    let count = be32(data, 4).ok_or(truncated(HEADER_SIZE))?;
    if count == 0 {
        return Err(FatError::NoSlices);
    }
    if count > MAX_SLICES {
        return Err(FatError::TooManySlices(count));
    }
    let count = count as usize;
    let header_end = HEADER_SIZE + count * arch_size;
    if data.len() < header_end {
        return Err(truncated(header_end));
    }

    let mut arches = Vec::with_capacity(count);
    for index in 0..count {
        let at = HEADER_SIZE + index * arch_size;
        // In bounds: header_end was checked above.
        let field = |n: usize| be32(data, at + 4 * n).unwrap_or_default();
        let arch = if magic == FAT_MAGIC {
            FatArch {
                cputype: field(0),
                cpusubtype: field(1),
                offset: u64::from(field(2)),
                size: u64::from(field(3)),
                align: field(4),
            }
        } else {
            FatArch {
                cputype: field(0),
                cpusubtype: field(1),
                offset: be64(data, at + 8).unwrap_or_default(),
                size: be64(data, at + 16).unwrap_or_default(),
                align: field(6),
            }
        };
        if arch.align > MAX_ALIGN {
            return Err(FatError::AlignTooLarge { index, align: arch.align });
        }
        if arch.size == 0 {
            return Err(FatError::EmptySlice { index });
        }
        if arch.offset < header_end as u64 {
            return Err(FatError::SliceOverlapsHeader {
                index,
                offset: arch.offset,
                header_end: header_end as u64,
            });
        }
        if arch.offset.checked_add(arch.size).is_none_or(|end| end > file_size) {
            return Err(FatError::SliceOutOfBounds {
                index,
                offset: arch.offset,
                size: arch.size,
                file_size,
            });
        }
        if arch.offset % (1u64 << arch.align) != 0 {
            return Err(FatError::Misaligned { index, offset: arch.offset, align: arch.align });
        }
        arches.push(arch);
    }

    for (second, b) in arches.iter().enumerate() {
        for (first, a) in arches[..second].iter().enumerate() {
            if a.offset < b.end() && b.offset < a.end() {
                return Err(FatError::SlicesOverlap { first, second });
            }
            if a.cpu() == b.cpu() {
                let (cputype, cpusubtype) = a.cpu();
                return Err(FatError::DuplicateCpu { first, second, cputype, cpusubtype });
            }
        }
    }

    Ok(arches
        .into_iter()
        .map(|arch| {
            // In bounds: checked above.
            let data = &data[arch.offset as usize..arch.end() as usize];
            Slice { arch, data }
        })
        .collect())
}

/// Writes a `FAT_MAGIC` universal file holding `slices` in the order given, each aligned to
/// 2^`align`, padded with zeroes.
pub fn write(slices: &[SliceIn<'_>], align: u32) -> Result<Vec<u8>, FatError> {
    if slices.is_empty() {
        return Err(FatError::NoSlices);
    }
    let count = u32::try_from(slices.len())
        .ok()
        .filter(|&n| n <= MAX_SLICES)
        .ok_or(FatError::TooManySlices(u32::try_from(slices.len()).unwrap_or(u32::MAX)))?;
    if align > MAX_ALIGN {
        return Err(FatError::AlignTooLarge { index: 0, align });
    }
    let unit = 1u64 << align;
    let mut arches = Vec::with_capacity(slices.len());
    let mut offset = (HEADER_SIZE + slices.len() * ARCH_SIZE) as u64;
    for (index, slice) in slices.iter().enumerate() {
        if slice.data.is_empty() {
            return Err(FatError::EmptySlice { index });
        }
        offset = offset.div_ceil(unit) * unit;
        let arch = FatArch {
            cputype: slice.cputype,
            cpusubtype: slice.cpusubtype,
            offset,
            size: slice.data.len() as u64,
            align,
        };
        for (first, earlier) in arches.iter().enumerate() {
            if FatArch::cpu(earlier) == arch.cpu() {
                let (cputype, cpusubtype) = arch.cpu();
                return Err(FatError::DuplicateCpu { first, second: index, cputype, cpusubtype });
            }
        }
        offset = arch.end();
        arches.push(arch);
    }
    if offset > u64::from(u32::MAX) {
        return Err(FatError::TooLarge { size: offset });
    }

    let mut out = Vec::with_capacity(offset as usize);
    out.extend_from_slice(&FAT_MAGIC.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    for arch in &arches {
        // Fit: the whole file is below 4 GiB.
        for value in [arch.cputype, arch.cpusubtype, arch.offset as u32, arch.size as u32, align] {
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
    for (arch, slice) in arches.iter().zip(slices) {
        out.resize(arch.offset as usize, 0);
        out.extend_from_slice(slice.data);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARM64: u32 = 0x0100_000c;
    const X86_64: u32 = 0x0100_0007;

    fn two() -> Vec<u8> {
        write(
            &[
                SliceIn { cputype: X86_64, cpusubtype: 3, data: b"!<arch>\nintel" },
                SliceIn { cputype: ARM64, cpusubtype: 0x8000_0002, data: b"!<arch>\napple!" },
            ],
            DEFAULT_ALIGN,
        )
        .unwrap()
    }

    /// Overwrites the big-endian u32 at `at`.
    fn poke(data: &mut [u8], at: usize, value: u32) {
        data[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    #[test]
    fn round_trip() {
        let file = two();
        assert!(is_fat(&file));
        assert_eq!(&file[..8], &[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2]);
        let slices = read(&file).unwrap();
        assert_eq!(slices.len(), 2);
        assert_eq!(
            slices[0].arch,
            FatArch { cputype: X86_64, cpusubtype: 3, offset: 16384, size: 13, align: 14 }
        );
        assert_eq!(slices[0].data, b"!<arch>\nintel");
        assert_eq!(
            slices[1].arch,
            FatArch { cputype: ARM64, cpusubtype: 0x8000_0002, offset: 32768, size: 14, align: 14 }
        );
        assert_eq!(slices[1].data, b"!<arch>\napple!");
        assert_eq!(slices[1].arch.cpu(), (ARM64, 2));
        assert_eq!(file.len(), 32768 + 14);
        // The padding is zeroes.
        assert!(file[48..16384].iter().all(|&b| b == 0));
    }

    #[test]
    fn round_trip_with_a_small_alignment_and_one_slice() {
        let file = write(&[SliceIn { cputype: ARM64, cpusubtype: 0, data: b"x" }], 2).unwrap();
        let slices = read(&file).unwrap();
        assert_eq!(slices[0].arch.offset, 28);
        assert_eq!(slices[0].data, b"x");
    }

    #[test]
    fn reads_fat_magic_64() {
        let mut file = vec![0u8; 64];
        poke(&mut file, 0, FAT_MAGIC_64);
        poke(&mut file, 4, 1);
        poke(&mut file, 8, ARM64);
        poke(&mut file, 12, 2);
        file[16..24].copy_from_slice(&48u64.to_be_bytes());
        file[24..32].copy_from_slice(&16u64.to_be_bytes());
        poke(&mut file, 32, 3);
        let slices = read(&file).unwrap();
        assert_eq!(
            slices[0].arch,
            FatArch { cputype: ARM64, cpusubtype: 2, offset: 48, size: 16, align: 3 }
        );
        assert_eq!(slices[0].data.len(), 16);
    }

    #[test]
    fn bad_magic() {
        assert_eq!(read(b"!<arch>\nfoo"), Err(FatError::BadMagic(0x213c_6172)));
        assert!(!is_fat(b"!<arch>\n"));
        let thin_macho = 0xfeed_facf_u32.to_le_bytes();
        assert_eq!(read(&thin_macho), Err(FatError::BadMagic(0xcffa_edfe)));
        assert!(FatError::BadMagic(1).to_string().starts_with("not a universal (fat) file"));
    }

    #[test]
    fn truncated() {
        assert_eq!(read(&[0xca, 0xfe]), Err(FatError::Truncated { needed: 8, have: 2 }));
        let file = two();
        // The arch table cut short.
        assert_eq!(read(&file[..30]), Err(FatError::Truncated { needed: 48, have: 30 }));
        // The last slice cut short.
        let cut = &file[..file.len() - 1];
        assert_eq!(
            read(cut),
            Err(FatError::SliceOutOfBounds { index: 1, offset: 32768, size: 14, file_size: 32781 })
        );
    }

    #[test]
    fn overlapping_slices() {
        let mut file = two();
        // Slice 1 starts where slice 0 does.
        poke(&mut file, 8 + 20 + 8, 16384);
        assert_eq!(read(&file), Err(FatError::SlicesOverlap { first: 0, second: 1 }));
        // ... or inside the header.
        let mut file = two();
        poke(&mut file, 8 + 8, 0);
        poke(&mut file, 8 + 16, 0);
        assert_eq!(
            read(&file),
            Err(FatError::SliceOverlapsHeader { index: 0, offset: 0, header_end: 48 })
        );
    }

    #[test]
    fn other_malformed_headers() {
        let mut file = two();
        poke(&mut file, 4, 0);
        assert_eq!(read(&file), Err(FatError::NoSlices));
        poke(&mut file, 4, 51); // a Java class file's major version
        assert_eq!(read(&file), Err(FatError::TooManySlices(51)));

        let mut file = two();
        poke(&mut file, 8 + 8, 16385);
        assert_eq!(read(&file), Err(FatError::Misaligned { index: 0, offset: 16385, align: 14 }));
        let mut file = two();
        poke(&mut file, 8 + 16, 16);
        assert_eq!(read(&file), Err(FatError::AlignTooLarge { index: 0, align: 16 }));
        let mut file = two();
        poke(&mut file, 8 + 12, 0);
        assert_eq!(read(&file), Err(FatError::EmptySlice { index: 0 }));
        // The same CPU twice, differing only in capability bits.
        let mut file = two();
        poke(&mut file, 8, ARM64);
        poke(&mut file, 8 + 4, 2);
        assert_eq!(
            read(&file),
            Err(FatError::DuplicateCpu { first: 0, second: 1, cputype: ARM64, cpusubtype: 2 })
        );
    }

    #[test]
    fn write_refuses_what_read_would() {
        assert_eq!(write(&[], DEFAULT_ALIGN), Err(FatError::NoSlices));
        let a = SliceIn { cputype: ARM64, cpusubtype: 2, data: b"a" };
        let a_versioned = SliceIn { cpusubtype: 0x8000_0002, ..a };
        assert_eq!(
            write(&[a, a_versioned], DEFAULT_ALIGN),
            Err(FatError::DuplicateCpu { first: 0, second: 1, cputype: ARM64, cpusubtype: 2 })
        );
        assert_eq!(
            write(&[SliceIn { data: b"", ..a }], DEFAULT_ALIGN),
            Err(FatError::EmptySlice { index: 0 })
        );
        assert_eq!(write(&[a], 16), Err(FatError::AlignTooLarge { index: 0, align: 16 }));
    }
}
