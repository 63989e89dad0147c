//! Checks that a file is the kind of `vmlinux` a microVM monitor loads: a
//! little-endian ELF64 for x86_64, and, when the kernel was built with
//! `CONFIG_PVH=y`, that it carries the Xen `PHYS32_ENTRY` ELF note through
//! which Firecracker and QEMU enter it directly.
//!
//! Only the ELF header and the `PT_NOTE` program headers are read; this is
//! not a general ELF parser.

/// The file is not a loadable x86_64 `vmlinux`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfCheckError {
    /// Too short or not starting with `\x7fELF`.
    #[error("not an ELF file (first bytes {0:02x?})")]
    NotElf(Vec<u8>),
    /// `EI_CLASS` is not ELFCLASS64.
    #[error("ELF class {0} is not ELF64 (2)")]
    Not64Bit(u8),
    /// `EI_DATA` is not little-endian.
    #[error("ELF data encoding {0} is not little-endian (1)")]
    NotLittleEndian(u8),
    /// `e_machine` is not EM_X86_64.
    #[error("ELF machine {0} is not x86_64 ({EM_X86_64})")]
    WrongMachine(u16),
    /// A program header or note points outside the file.
    #[error("ELF {0} points outside the file")]
    Truncated(&'static str),
}

/// ELF machine number of x86_64.
pub const EM_X86_64: u16 = 62;
/// Program header type of a note segment.
const PT_NOTE: u32 = 4;
/// Xen ELF note carrying the 32-bit physical PVH entry point
/// (`XEN_ELFNOTE_PHYS32_ENTRY` in `xen/interface/elfnote.h`).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfInfo {
    /// `e_entry`.
    pub entry: u64,
    /// The PVH entry address from the Xen note, if present.
    pub pvh_entry: Option<u64>,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Checks the ELF64/x86_64 header and looks for the PVH note.
pub fn inspect(bytes: &[u8]) -> Result<ElfInfo, ElfCheckError> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfCheckError::NotElf(bytes[..bytes.len().min(4)].to_vec()));
    }
    if bytes[4] != 2 {
        return Err(ElfCheckError::Not64Bit(bytes[4]));
    }
    if bytes[5] != 1 {
        return Err(ElfCheckError::NotLittleEndian(bytes[5]));
    }
    let machine = u16_at(bytes, 18).unwrap_or(0);
    if machine != EM_X86_64 {
        return Err(ElfCheckError::WrongMachine(machine));
    }
    let entry = u64_at(bytes, 24).unwrap_or(0);
    let phoff = u64_at(bytes, 32).unwrap_or(0) as usize;
    let phentsize = usize::from(u16_at(bytes, 54).unwrap_or(0));
    let phnum = usize::from(u16_at(bytes, 56).unwrap_or(0));
    let mut pvh_entry = None;
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i * phentsize)
            .ok_or(ElfCheckError::Truncated("program header"))?;
        let p_type = u32_at(bytes, ph).ok_or(ElfCheckError::Truncated("program header"))?;
        if p_type != PT_NOTE {
            continue;
        }
        let off = u64_at(bytes, ph + 8).ok_or(ElfCheckError::Truncated("program header"))? as usize;
        let size =
            u64_at(bytes, ph + 32).ok_or(ElfCheckError::Truncated("program header"))? as usize;
        let notes = off
            .checked_add(size)
            .and_then(|end| bytes.get(off..end))
            .ok_or(ElfCheckError::Truncated("note segment"))?;
        if let Some(e) = find_note(notes, b"Xen", XEN_ELFNOTE_PHYS32_ENTRY)? {
            pvh_entry = Some(e);
        }
    }
    Ok(ElfInfo { entry, pvh_entry })
}

/// Walks the notes of one segment: `namesz, descsz, type`, then the name
/// and the descriptor, each padded to 4 bytes.
fn find_note(mut notes: &[u8], name: &[u8], kind: u32) -> Result<Option<u64>, ElfCheckError> {
    let pad = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0).unwrap_or(0) as usize;
        let descsz = u32_at(notes, 4).unwrap_or(0) as usize;
        let ntype = u32_at(notes, 8).unwrap_or(0);
        let name_end = 12 + pad(namesz);
        let desc_end = name_end + pad(descsz);
        if desc_end > notes.len() {
            return Err(ElfCheckError::Truncated("note"));
        }
        let nname = &notes[12..12 + namesz];
        let desc = &notes[name_end..name_end + descsz];
        if ntype == kind && nname.strip_suffix(b"\0").unwrap_or(nname) == name {
            let value = match descsz {
                4 => u64::from(u32_at(desc, 0).unwrap_or(0)),
                8 => u64_at(desc, 0).unwrap_or(0),
                _ => return Err(ElfCheckError::Truncated("PVH note descriptor")),
            };
            return Ok(Some(value));
        }
        notes = &notes[desc_end..];
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF64 x86_64 file with one PT_NOTE segment holding the
    /// given notes `(name, type, desc)`.
    pub(crate) fn tiny_elf(notes: &[(&[u8], u32, &[u8])]) -> Vec<u8> {
        let mut note_bytes = Vec::new();
        for (name, ty, desc) in notes {
            let mut n = name.to_vec();
            n.push(0);
            note_bytes.extend_from_slice(&(n.len() as u32).to_le_bytes());
            note_bytes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            note_bytes.extend_from_slice(&ty.to_le_bytes());
            note_bytes.extend_from_slice(&n);
            note_bytes.resize(note_bytes.len().div_ceil(4) * 4, 0);
            note_bytes.extend_from_slice(desc);
            note_bytes.resize(note_bytes.len().div_ceil(4) * 4, 0);
        }
        let mut f = vec![0u8; 64 + 56];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[24..32].copy_from_slice(&0x100_0000u64.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let ph = 64;
        f[ph..ph + 4].copy_from_slice(&PT_NOTE.to_le_bytes());
        f[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes());
        f[ph + 32..ph + 40].copy_from_slice(&(note_bytes.len() as u64).to_le_bytes());
        f.extend_from_slice(&note_bytes);
        f
    }

    #[test]
    fn test_inspect_finds_the_pvh_note_among_others() {
        let elf = tiny_elf(&[
            (
                b"GNU",
                3,
                &[
                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
                ],
            ),
            (
                b"Xen",
                XEN_ELFNOTE_PHYS32_ENTRY,
                &0x0100_0a60u32.to_le_bytes(),
            ),
        ]);
        let info = inspect(&elf).unwrap();
        assert_eq!(info.pvh_entry, Some(0x0100_0a60));
        assert_eq!(info.entry, 0x100_0000);
    }

    #[test]
    fn test_inspect_without_pvh_note_and_wrong_files() {
        let elf = tiny_elf(&[(b"Xen", 5, b"xen-3.0\0")]);
        assert_eq!(inspect(&elf).unwrap().pvh_entry, None);
        assert!(matches!(
            inspect(b"MZ\x90\x00"),
            Err(ElfCheckError::NotElf(_))
        ));
        let mut arm = elf.clone();
        arm[18..20].copy_from_slice(&183u16.to_le_bytes());
        assert_eq!(inspect(&arm), Err(ElfCheckError::WrongMachine(183)));
        let mut elf32 = elf;
        elf32[4] = 1;
        assert_eq!(inspect(&elf32), Err(ElfCheckError::Not64Bit(1)));
    }
}
