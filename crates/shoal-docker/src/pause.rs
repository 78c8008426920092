//! The image a task's network sandbox runs ([`PAUSE_IMAGE`]): one static executable, `/pause`,
//! that holds its namespaces until it is told to stop. The driver imports it into the engine
//! itself because a node may have no registry to pull from, and nothing of it is installed with
//! Docker (`docker-init` only runs another program). Pure: the bytes only, no IO.
//!
//! The executable is hand-assembled rather than compiled, so the crate needs no toolchain for
//! it and every build holds the same bytes: a 192-byte x86_64 Linux ELF with one loadable
//! segment and no libc. As PID 1 of its container it gets no signal it has no handler for
//! (but SIGKILL and SIGSTOP), so it blocks SIGTERM and SIGINT, which queues them, and waits
//! for them with `rt_sigtimedwait`: `docker stop` ends it at once, with code 0, instead of
//! after the grace.

/// `shoal/pause:<this crate's version>`: a new release never runs an older program.
pub const PAUSE_IMAGE: &str = concat!("shoal/pause:", env!("CARGO_PKG_VERSION"));
/// Where the program is in the image.
pub const PAUSE_PATH: &str = "/pause";

/// Where the segment is loaded (the conventional non-PIE base); the code refers to its signal
/// set by absolute address.
#[cfg(target_arch = "x86_64")]
const BASE: u64 = 0x40_0000;
/// The ELF header (64 bytes) and the one program header (56 bytes) precede the code.
#[cfg(target_arch = "x86_64")]
const HEADERS: u64 = 64 + 56;
/// Where the signal set sits after the code, 8-aligned.
#[cfg(target_arch = "x86_64")]
const SET_OFFSET: u64 = 64;

/// The pause program: a static x86_64 Linux executable. What each instruction does is beside
/// its bytes; `elf_runs_what_it_says` checks the layout.
#[cfg(target_arch = "x86_64")]
pub fn pause_executable() -> Vec<u8> {
    let set = u32::try_from(BASE + HEADERS + SET_OFFSET)
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mut code: Vec<u8> = Vec::with_capacity(72);
    // rt_sigprocmask(SIG_BLOCK, &set, NULL, 8): a blocked signal is queued even for PID 1.
    code.extend([0xb8, 14, 0, 0, 0]); // mov eax, 14 (rt_sigprocmask)
    code.extend([0x31, 0xff]); // xor edi, edi (SIG_BLOCK)
    code.push(0xbe); // mov esi, set
    code.extend(set);
    code.extend([0x31, 0xd2]); // xor edx, edx (no old set)
    code.extend([0x41, 0xba, 8, 0, 0, 0]); // mov r10d, 8 (sizeof(sigset_t))
    code.extend([0x0f, 0x05]); // syscall
    let wait = code.len();
    // rt_sigtimedwait(&set, NULL, NULL, 8): sleeps until SIGTERM or SIGINT arrives.
    code.extend([0xb8, 128, 0, 0, 0]); // mov eax, 128 (rt_sigtimedwait)
    code.push(0xbf); // mov edi, set
    code.extend(set);
    code.extend([0x31, 0xf6]); // xor esi, esi (no siginfo)
    code.extend([0x31, 0xd2]); // xor edx, edx (no timeout)
    code.extend([0x41, 0xba, 8, 0, 0, 0]); // mov r10d, 8
    code.extend([0x0f, 0x05]); // syscall
    code.extend([0x85, 0xc0]); // test eax, eax
    // js wait: an error (EINTR after a SIGSTOP/SIGCONT) waits again.
    let back = i8::try_from(wait as i64 - (code.len() as i64 + 2)).unwrap_or(0);
    code.extend([0x78, back.to_le_bytes()[0]]);
    code.extend([0xb8, 231, 0, 0, 0]); // mov eax, 231 (exit_group)
    code.extend([0x31, 0xff]); // xor edi, edi (code 0)
    code.extend([0x0f, 0x05]); // syscall
    code.resize(SET_OFFSET as usize, 0);
    // The set: bit N-1 for signal N, SIGINT (2) and SIGTERM (15).
    code.extend(((1u64 << 1) | (1u64 << 14)).to_le_bytes());

    let size = HEADERS + code.len() as u64;
    let mut elf = Vec::with_capacity(size as usize);
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI, padding.
    elf.extend([0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend(2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend(0x3eu16.to_le_bytes()); // e_machine: EM_X86_64
    elf.extend(1u32.to_le_bytes()); // e_version
    elf.extend((BASE + HEADERS).to_le_bytes()); // e_entry: the first instruction
    elf.extend(64u64.to_le_bytes()); // e_phoff: right after this header
    elf.extend(0u64.to_le_bytes()); // e_shoff: no sections
    elf.extend(0u32.to_le_bytes()); // e_flags
    elf.extend(64u16.to_le_bytes()); // e_ehsize
    elf.extend(56u16.to_le_bytes()); // e_phentsize
    elf.extend(1u16.to_le_bytes()); // e_phnum
    elf.extend([0u8; 6]); // e_shentsize, e_shnum, e_shstrndx
    elf.extend(1u32.to_le_bytes()); // p_type: PT_LOAD
    elf.extend(5u32.to_le_bytes()); // p_flags: read, execute
    elf.extend(0u64.to_le_bytes()); // p_offset: the whole file...
    elf.extend(BASE.to_le_bytes()); // p_vaddr: ...at BASE
    elf.extend(BASE.to_le_bytes()); // p_paddr
    elf.extend(size.to_le_bytes()); // p_filesz
    elf.extend(size.to_le_bytes()); // p_memsz
    elf.extend(0x1000u64.to_le_bytes()); // p_align
    elf.extend(code);
    elf
}

/// The image's root filesystem as the engine's import takes it: a tar of `/pause`.
#[cfg(target_arch = "x86_64")]
pub fn rootfs() -> Result<Vec<u8>, shoal_runtime::RuntimeError> {
    Ok(single_file_tar(
        PAUSE_PATH.trim_start_matches('/'),
        0o755,
        &pause_executable(),
    ))
}

/// Elsewhere the program is not written yet; an image of that name put in the engine by hand
/// (holding a `/pause` that sleeps) is used all the same.
#[cfg(not(target_arch = "x86_64"))]
pub fn rootfs() -> Result<Vec<u8>, shoal_runtime::RuntimeError> {
    Err(shoal_runtime::RuntimeError::Unsupported {
        runtime: "docker",
        what: "overlay networks on this CPU architecture: the network sandbox's pause program \
               exists for x86_64 only (or import an image named shoal/pause:<version> holding \
               a /pause that sleeps)",
    })
}

/// A tar archive (ustar) of one regular file at the root, as the engine's import takes a root
/// filesystem. Owned by root, mtime 0, so the same bytes always make the same layer.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub fn single_file_tar(name: &str, mode: u32, content: &[u8]) -> Vec<u8> {
    fn octal(field: &mut [u8], value: u64) {
        // Zero-padded octal digits filling the field but its last byte, which stays NUL.
        let digits = field.len() - 1;
        let text = format!("{value:0digits$o}");
        let text = &text.as_bytes()[text.len().saturating_sub(digits)..];
        field[..digits].copy_from_slice(text);
    }
    let mut header = [0u8; 512];
    let n = name.len().min(100);
    header[..n].copy_from_slice(&name.as_bytes()[..n]);
    octal(&mut header[100..108], u64::from(mode));
    octal(&mut header[108..116], 0); // uid
    octal(&mut header[116..124], 0); // gid
    octal(&mut header[124..136], content.len() as u64);
    octal(&mut header[136..148], 0); // mtime
    header[156] = b'0'; // a regular file
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    // The checksum is taken with its own field read as spaces.
    header[148..156].fill(b' ');
    let sum: u64 = header.iter().map(|&b| u64::from(b)).sum();
    octal(&mut header[148..155], sum);
    header[155] = b' ';

    let padded = content.len().div_ceil(512) * 512;
    let mut tar = Vec::with_capacity(512 + padded + 1024);
    tar.extend(header);
    tar.extend(content);
    tar.resize(512 + padded, 0);
    // Two zero blocks end the archive.
    tar.resize(512 + padded + 1024, 0);
    tar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(a)
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn elf_runs_what_it_says() {
        let elf = pause_executable();
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(u16_at(&elf, 18), 0x3e, "x86_64");
        assert_eq!(elf.len(), 192);
        let entry = u64_at(&elf, 24);
        assert_eq!(entry, BASE + HEADERS, "the code follows the headers");
        // The segment maps the whole file.
        assert_eq!(u64_at(&elf, 64 + 32), elf.len() as u64);
        // Both syscalls take the set where it is.
        let set_addr = (BASE + HEADERS + SET_OFFSET) as u32;
        let code = &elf[HEADERS as usize..];
        assert_eq!(&code[8..12], set_addr.to_le_bytes());
        assert_eq!(&code[28..32], set_addr.to_le_bytes());
        assert_eq!(
            u64_at(code, SET_OFFSET as usize),
            (1 << 1) | (1 << 14),
            "SIGINT and SIGTERM"
        );
        // `js` goes back to the rt_sigtimedwait call (offset 22) from the end of itself (48).
        assert_eq!(&code[46..48], [0x78, (22i8 - 48) as u8]);
        assert_eq!(&code[22..27], [0xb8, 128, 0, 0, 0]);
    }

    #[test]
    fn the_tar_is_one_file_with_a_valid_header() {
        let tar = single_file_tar("pause", 0o755, b"abc");
        assert_eq!(tar.len(), 512 * 4);
        assert_eq!(&tar[..6], b"pause\0");
        assert_eq!(&tar[100..108], b"0000755\0");
        assert_eq!(&tar[124..136], b"00000000003\0");
        assert_eq!(&tar[257..265], b"ustar\x0000");
        let stored = std::str::from_utf8(&tar[148..154]).expect("octal digits");
        let stored = u64::from_str_radix(stored, 8).expect("octal");
        let mut blank = tar[..512].to_vec();
        blank[148..156].fill(b' ');
        assert_eq!(stored, blank.iter().map(|&b| u64::from(b)).sum::<u64>());
        assert_eq!(&tar[512..515], b"abc");
        assert!(tar[515..].iter().all(|&b| b == 0));
    }

    /// The program blocks SIGINT and SIGTERM, sleeps, and exits 0 on SIGTERM (here it is not
    /// PID 1, so the block is what keeps SIGTERM from killing it).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_program_waits_for_sigterm_and_exits_0() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("pause");
        std::fs::write(&exe, pause_executable()).expect("write");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut child = std::process::Command::new(&exe).spawn().expect("run it");
        // While it waits the kernel shows its mask without the waited signals; the syscall it
        // sleeps in (128, rt_sigtimedwait, on the set's address) shows it blocked them first.
        let syscall = format!("/proc/{}/syscall", child.id());
        let want = format!("128 {:#x} ", BASE + HEADERS + SET_OFFSET);
        let mut seen = String::new();
        for _ in 0..1000 {
            seen = std::fs::read_to_string(&syscall).unwrap_or_default();
            if seen.starts_with(&want) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if !seen.starts_with(&want) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("not waiting in rt_sigtimedwait: /proc/PID/syscall is {seen:?}");
        }
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let exit = child.wait().expect("wait");
        assert_eq!(exit.code(), Some(0), "{exit:?}");
    }
}
