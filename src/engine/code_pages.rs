//! The worker program's code and constants in the page cache as 2 MiB pages, before workers start.
//!
//! Every step process maps the code it runs, and its exit unmaps it. Mapped with 4 KiB pages, that
//! is about 5,000 page-table entries per step process, each touching its page's bookkeeping twice;
//! it was about a quarter of a trivial step's CPU. A file page cached as one 2 MiB folio is mapped
//! with a single entry instead, when the mapping is 2 MiB-aligned in both the file and memory (the
//! binary is linked with a 2 MiB maximum page size for this: `build.rs`).
//!
//! Whether a file's pages are cached that way depends on how they got into the cache (the linker's
//! writes, a copy, 4 KiB faults), so the supervisor reads them in itself: each 2 MiB range of the
//! program's read-only segments is mapped on its own with `MADV_HUGEPAGE` and touched, which makes the
//! kernel read it as one folio if none of it is cached yet. Ranges that come back in small pages are
//! dropped from the cache (`POSIX_FADV_DONTNEED`: only pages no process maps) and read again. What
//! stays small (pages some process maps, a filesystem without large folios) is only slower.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::forking::parse_range;

/// The size of a page one level up from 4 KiB on x86-64 and arm64 with 4 KiB pages.
pub(super) const HUGE: usize = 2 << 20;
/// ELF program header fields this reads (see `elf(5)`).
const PT_LOAD: u32 = 1;
const PF_W: u32 = 2;

/// How many of the program's 2 MiB ranges of code and constants are cached as 2 MiB pages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cached {
    pub huge: usize,
    pub ranges: usize,
}

/// Caches `program`'s read-only segments as 2 MiB pages where it can. An error means the program
/// could not be read or is not an ELF file this understands; nothing is changed then.
pub fn cache_in_huge_pages(program: &Path) -> std::io::Result<Cached> {
    // The page-table arithmetic here (and a 2 MiB page one level up) is that of 4 KiB pages.
    // SAFETY: sysconf takes no pointer.
    if unsafe { libc::sysconf(libc::_SC_PAGESIZE) } != 4096 {
        return Err(std::io::Error::other("the page size is not 4 KiB"));
    }
    // Not blocking on a FIFO, and not reading a device.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(program)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let ranges = huge_ranges(&file)?;
    let mut cached = Cached {
        huge: 0,
        ranges: ranges.len(),
    };
    if ranges.is_empty() {
        return Ok(cached);
    }
    let window = Window::new(ranges.len())?;
    let mut small = window.touch(&file, &ranges)?;
    if !small.is_empty() {
        // Pages written recently (a fresh build) are dirty, and dirty pages are not dropped.
        // SAFETY: fdatasync takes an fd we own.
        unsafe { libc::fdatasync(file.as_raw_fd()) };
        window.unmap();
        // This process runs the same program: its own mappings would keep their small pages.
        let meta = file.metadata()?;
        unmap_own_small_pages(meta.dev(), meta.ino())?;
        for &i in &small {
            // SAFETY: advice on a range of a file we opened; it changes nothing but the cache.
            unsafe {
                libc::posix_fadvise(
                    file.as_raw_fd(),
                    ranges[i] as libc::off_t,
                    HUGE as libc::off_t,
                    libc::POSIX_FADV_DONTNEED,
                );
            }
        }
        let again: Vec<usize> = small.iter().map(|&i| ranges[i]).collect();
        small = window
            .touch(&file, &again)?
            .into_iter()
            .map(|j| small[j])
            .collect();
    }
    cached.huge = ranges.len() - small.len();
    Ok(cached)
}

/// When this process maps the file `(dev, ino)` (it is the program itself), makes its read-only
/// mappings of it ask for 2 MiB pages and drops their entries, so that no page of them is mapped
/// when the cache drops the small ones. What runs next faults its code back in, now as 2 MiB pages.
/// A mapping with a page of its own (written to, as by a debugger's breakpoint) is left alone:
/// dropping its entries would lose that page.
fn unmap_own_small_pages(dev: u64, ino: u64) -> std::io::Result<()> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || !(f[1] == "r-xp" || f[1] == "r--p") {
            continue;
        }
        let same_file = f[4].parse::<u64>() == Ok(ino)
            && f[3].split_once(':').is_some_and(|(major, minor)| {
                let (Ok(major), Ok(minor)) = (
                    u32::from_str_radix(major, 16),
                    u32::from_str_radix(minor, 16),
                ) else {
                    return false;
                };
                libc::makedev(major, minor) == dev
            });
        let Some((start, end)) = parse_range(f[0]) else {
            continue;
        };
        if !same_file || has_own_page(start, end)? {
            continue;
        }
        // SAFETY: the range is one of this process's read-only mappings of a file, holding only the
        // file's pages: dropping their entries loses nothing, and code running from it faults back in.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
    Ok(())
}

/// Whether any page of `[start, end)` in this process is its own (anonymous), not the file's: in
/// memory or swapped out (a relocated page of constants can be either).
fn has_own_page(start: usize, end: usize) -> std::io::Result<bool> {
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    const FILE_PAGE: u64 = 1 << 61;
    let pagemap = File::open("/proc/self/pagemap")?;
    let mut entries = vec![0u8; (end - start) / 4096 * 8];
    pagemap.read_exact_at(&mut entries, (start / 4096 * 8) as u64)?;
    Ok(entries.chunks_exact(8).any(|e| {
        let e = u64::from_ne_bytes(e.try_into().expect("8 bytes"));
        e & (PRESENT | SWAPPED) != 0 && e & FILE_PAGE == 0
    }))
}

/// The file offsets of the 2 MiB ranges that a process running `file` can map with 2 MiB pages:
/// those wholly inside a read-only loadable segment whose file offset and address agree modulo 2 MiB.
fn huge_ranges(file: &File) -> std::io::Result<Vec<usize>> {
    let not_elf = || std::io::Error::other("not a 64-bit little-endian ELF file");
    let mut header = [0u8; 64];
    file.read_exact_at(&mut header, 0)?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Err(not_elf());
    }
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4"));
    let u64_at =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8")) as usize;
    let (phoff, phentsize, phnum) = (
        u64_at(&header, 0x20),
        u16_at(&header, 0x36),
        u16_at(&header, 0x38),
    );
    if phentsize < 56 || phnum > 256 {
        return Err(not_elf());
    }
    // A range past the end of a truncated file would fault when touched.
    let file_len = file.metadata()?.len() as usize;
    let mut table = vec![0u8; phentsize * phnum];
    file.read_exact_at(&mut table, phoff as u64)?;
    let mut ranges = Vec::new();
    for ph in table.chunks_exact(phentsize) {
        let (kind, flags) = (u32_at(ph, 0), u32_at(ph, 4));
        let (offset, vaddr, filesz) = (u64_at(ph, 8), u64_at(ph, 16), u64_at(ph, 32));
        if kind != PT_LOAD || flags & PF_W != 0 || (vaddr.wrapping_sub(offset)) % HUGE != 0 {
            continue;
        }
        // Sizes from a malformed file must not overflow; a segment is cut at the file's end.
        let Some(end) = offset.checked_add(filesz).map(|e| e.min(file_len)) else {
            return Err(not_elf());
        };
        let Some(mut at) = offset.checked_next_multiple_of(HUGE) else {
            continue;
        };
        while end.checked_sub(at).is_some_and(|left| left >= HUGE) {
            ranges.push(at);
            at += HUGE;
        }
    }
    Ok(ranges)
}

/// Address space for mapping ranges of the program one by one, each 2 MiB-aligned and with an
/// unmapped gap after it, so that no two merge into one mapping (their sizes are read apart).
struct Window {
    base: *mut u8,
    len: usize,
}

impl Window {
    fn new(slots: usize) -> std::io::Result<Window> {
        let len = (slots * 2 + 1) * HUGE;
        // SAFETY: a fresh reservation, with no access; unmapped on drop.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Window {
            base: base.cast(),
            len,
        })
    }

    fn slot(&self, i: usize) -> *mut u8 {
        let aligned = (self.base as usize).next_multiple_of(HUGE);
        (aligned + i * 2 * HUGE) as *mut u8
    }

    /// Maps each range of `file` (by offset) into a slot and reads a byte of it; returns the indices
    /// of those the kernel did not map with one 2 MiB page.
    fn touch(&self, file: &File, offsets: &[usize]) -> std::io::Result<Vec<usize>> {
        for (i, &offset) in offsets.iter().enumerate() {
            let at = self.slot(i);
            self.map(at, HUGE, file, offset)?;
            // SAFETY: advice and a read on the mapping just made.
            unsafe {
                libc::madvise(at.cast(), HUGE, libc::MADV_HUGEPAGE);
                std::ptr::read_volatile(at);
            }
        }
        let huge = self.huge_slots(offsets.len())?;
        Ok((0..offsets.len()).filter(|i| !huge.contains(i)).collect())
    }

    /// Maps `len` bytes of `file` from `offset`, read-only and private, at `at` in the reservation.
    fn map(&self, at: *mut u8, len: usize, file: &File, offset: usize) -> std::io::Result<()> {
        let inside =
            self.base as usize <= at as usize && at as usize + len <= self.base as usize + self.len;
        if !inside {
            return Err(std::io::Error::other("outside the reservation"));
        }
        // SAFETY: replaces part of our own reservation (checked above) with a read-only private view
        // of the file.
        let mapped = unsafe {
            libc::mmap(
                at.cast(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                file.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if mapped == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The slots `/proc/self/smaps` shows mapped with a 2 MiB page.
    fn huge_slots(&self, slots: usize) -> std::io::Result<Vec<usize>> {
        let smaps = std::fs::read_to_string("/proc/self/smaps")?;
        let mut current = None;
        let mut huge = Vec::new();
        for line in smaps.lines() {
            if let Some(kb) = line.strip_prefix("FilePmdMapped:") {
                let kb: usize = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                if let Some(i) = current.take() {
                    if kb * 1024 >= HUGE {
                        huge.push(i);
                    }
                }
            } else if let Some((start, _)) = line.split_whitespace().next().and_then(parse_range) {
                current = (0..slots).find(|&i| self.slot(i) as usize == start);
            }
        }
        Ok(huge)
    }

    /// Puts the reservation back over every slot.
    fn unmap(&self) {
        // SAFETY: remaps our own reservation, dropping the file views in it.
        unsafe {
            libc::mmap(
                self.base.cast(),
                self.len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                -1,
                0,
            );
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: the reservation made in `new`, which nothing else uses.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// An ELF header and program headers: `(flags, offset, vaddr, filesz)` per loadable segment.
    fn elf(segments: &[(u32, usize, usize, usize)]) -> Vec<u8> {
        let typed: Vec<_> = segments
            .iter()
            .map(|&(f, o, v, z)| (PT_LOAD, f, o, v, z))
            .collect();
        elf_typed(&typed)
    }

    /// The same, with each segment's type: `(type, flags, offset, vaddr, filesz)`.
    fn elf_typed(segments: &[(u32, u32, usize, usize, usize)]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for &(kind, flags, offset, vaddr, filesz) in segments {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&kind.to_le_bytes());
            ph[4..8].copy_from_slice(&flags.to_le_bytes());
            ph[8..16].copy_from_slice(&(offset as u64).to_le_bytes());
            ph[16..24].copy_from_slice(&(vaddr as u64).to_le_bytes());
            ph[32..40].copy_from_slice(&(filesz as u64).to_le_bytes());
            b.extend(ph);
        }
        b
    }

    /// A file beside this test binary (on the file system the build is on, not a tmpfs).
    fn scratch_file(name: &str, bytes: &[u8], len: usize) -> std::path::PathBuf {
        let path = std::env::current_exe()
            .unwrap()
            .with_file_name(format!("{name}-{}", std::process::id()));
        let mut f = File::create(&path).unwrap();
        f.write_all(bytes).unwrap();
        // Written 4 KiB at a time, so the cache holds it in small pages to begin with.
        let page = [0x5au8; 4096];
        let mut written = bytes.len();
        while written < len {
            f.write_all(&page[..4096.min(len - written)]).unwrap();
            written += 4096;
        }
        path
    }

    const R: u32 = 4;
    const RX: u32 = 5;
    const RW: u32 = 6;

    #[test]
    fn only_whole_2mib_pieces_of_aligned_read_only_segments_count() {
        let header = elf(&[
            // Read-only, aligned: [0, 5 MiB) holds two whole ranges.
            (R, 0, 0, 5 << 20),
            // Code at an address 4 KiB off its offset: none.
            (RX, 6 << 20, (6 << 20) + 4096, 4 << 20),
            // Code starting mid-range, 6 MiB from its offset: [11, 16.5 MiB) holds [12, 14) and
            // [14, 16).
            (RX, 11 << 20, 17 << 20, 11 << 19),
            // Writable: none.
            (RW, 0, 0, 8 << 20),
        ]);
        let path = scratch_file("code-pages-ranges", &header, 17 << 20);
        let file = File::open(&path).unwrap();
        let ranges = huge_ranges(&file).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(ranges, vec![0, 2 << 20, 12 << 20, 14 << 20]);
    }

    #[test]
    fn other_segments_and_sizes_that_overflow_give_no_range() {
        const PT_NOTE: u32 = 4;
        let header = elf_typed(&[
            (PT_NOTE, R, 0, 0, 4 << 20),
            (PT_LOAD, R, 2 << 20, 2 << 20, usize::MAX),
        ]);
        let path = scratch_file("code-pages-odd", &header, 6 << 20);
        let result = huge_ranges(&File::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(result.is_err(), "{result:?}");
        let header = elf_typed(&[
            (PT_NOTE, R, 0, 0, 4 << 20),
            (PT_LOAD, R, usize::MAX - 8191, usize::MAX - 8191, 4096),
        ]);
        let path = scratch_file("code-pages-note", &header, 6 << 20);
        let ranges = huge_ranges(&File::open(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(ranges, Vec::<usize>::new());
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let path = std::env::current_exe()
            .unwrap()
            .with_file_name(format!("code-pages-fifo-{}", std::process::id()));
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo takes a path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let result = cache_in_huge_pages(&path);
        std::fs::remove_file(&path).unwrap();
        let err = result.unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn a_truncated_file_has_no_range_past_its_end() {
        let header = elf(&[(R, 0, 0, 8 << 20)]);
        let path = scratch_file("code-pages-truncated", &header, 5 << 20);
        let ranges = huge_ranges(&File::open(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(ranges, vec![0, 2 << 20]);
    }

    #[test]
    fn a_file_that_is_not_elf_is_refused() {
        let path = scratch_file("code-pages-not-elf", b"#!/bin/sh\n", 8192);
        let err = cache_in_huge_pages(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(err.to_string().contains("not a 64-bit"), "{err}");
    }

    /// A fresh file, cached in 4 KiB pages as it was written, ends up cached in 2 MiB pages: its
    /// small pages are dropped and read again. This needs what the server's machines have (a kernel
    /// and file system with large folios in the page cache, such as ext4 on Linux 6.x).
    #[test]
    fn a_freshly_written_program_is_cached_again_in_2mib_pages() {
        let len = 8 << 20;
        let path = scratch_file("code-pages-fresh", &elf(&[(R, 0, 0, len)]), len);
        let cached = cache_in_huge_pages(&path).unwrap();
        // What the kernel maps now: the whole file in one mapping of this test's own, 2 MiB-aligned,
        // read as `smaps` counts it.
        let file = File::open(&path).unwrap();
        let reserve = Window::new(4).unwrap();
        let at = reserve.slot(0);
        reserve.map(at, len, &file, 0).unwrap();
        for range in 0..4 {
            // SAFETY: reads inside the mapping just made.
            unsafe { std::ptr::read_volatile(at.add(range * HUGE)) };
        }
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let header = format!("{:x}-", at as usize);
        let huge_kb: Option<usize> = smaps
            .split_once(&header)
            .and_then(|(_, rest)| rest.lines().find_map(|l| l.strip_prefix("FilePmdMapped:")))
            .map(|kb| kb.trim().trim_end_matches("kB").trim().parse().unwrap());
        drop(reserve);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(cached, Cached { huge: 4, ranges: 4 });
        assert_eq!(huge_kb, Some(8192), "KiB of the file mapped in 2 MiB pages");
    }
}
