//! The socket between the supervisor and a worker (and its step processes), as a read half and a
//! write half that ask epoll only about what they wait for.
//!
//! tokio's `UnixStream` registers its socket for readability and writability at once. On a Unix
//! socket, every message the peer reads makes the writer's socket writable again, so each frame woke
//! the thread that sent it, to find nothing to do: about one context switch more per frame, on each
//! side (a fetch step exchanges about ten frames). Here the read half registers for readability only,
//! and the write half writes straight away and registers for writability only while the socket is
//! full (rare: frames are small, and the peer reads them as they come).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// Splits a connected socket. In a tokio runtime's context: the read half registers with its reactor.
pub fn split(sock: std::os::unix::net::UnixStream) -> io::Result<(Reader, Writer)> {
    sock.set_nonblocking(true)?;
    let fd = OwnedFd::from(sock);
    let write = fd.try_clone()?;
    Ok((
        Reader {
            fd: register(fd, Interest::READABLE)?,
        },
        Writer {
            fd: write,
            full: None,
        },
    ))
}

fn register(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is open, stays open and names the same file until the `AsyncFd` that
    // owns it is dropped.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(io::Error::from)
}

/// The read half, registered for readability only.
pub struct Reader {
    fd: AsyncFd<OwnedFd>,
}

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut ready = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            // `try_io` forgets the readiness when the read would block, so the next poll waits.
            let wanted = unfilled.len();
            let read = |fd: &AsyncFd<OwnedFd>| {
                // SAFETY: reads into a buffer we hold mutably, at most its length.
                bytes(|| unsafe {
                    libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len())
                })
            };
            match ready.try_io(read) {
                Ok(Ok(n)) => {
                    // Less than asked for: the socket is drained, so the next poll waits for more
                    // rather than trying a read that would block (as tokio's own streams do).
                    if n > 0 && n < wanted {
                        ready.clear_ready();
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

/// The write half: writes at once, and waits for writability (registered for it alone, and only
/// then) when the socket is full.
///
/// In a step process the registration would be made on the epoll instance it shares with its worker,
/// and would outlive the process were it to `_exit` while waiting (the worker still holds the socket).
/// It does not: a step process exits only once its `Done` frame was written in full
/// (`worker::serve`), which drops the registration.
pub struct Writer {
    fd: OwnedFd,
    /// A registration for writability while the socket is full; dropped once a write went through.
    full: Option<AsyncFd<OwnedFd>>,
}

impl AsyncWrite for Writer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            // `send` with `MSG_NOSIGNAL`: a peer gone is an error (EPIPE), never a SIGPIPE, whatever
            // the embedding program does with that signal.
            // SAFETY: sends from a buffer we hold, at most its length.
            let sent = bytes(|| unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_NOSIGNAL,
                )
            });
            match sent {
                Ok(n) => {
                    // Kept while the socket is still too full to take all of it.
                    if n == data.len() {
                        self.full = None;
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if self.full.is_none() {
                // A registration sees the socket's state when it is made: space freed since the
                // write above is not missed.
                let fd = self.fd.try_clone()?;
                self.full = Some(register(fd, Interest::WRITABLE)?);
            }
            let full = self.full.as_ref().expect("registered above");
            ready!(full.poll_write_ready(cx))?.clear_ready();
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shut_down())
    }
}

impl Drop for Writer {
    /// As tokio's write half does: the peer reads the end of the stream even while our read half
    /// (another descriptor of the same socket) is still open. That is how a worker learns that the
    /// supervisor is done with it.
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}

impl Writer {
    /// Ends the stream for the peer (`SHUT_WR`).
    fn shut_down(&self) -> io::Result<()> {
        // SAFETY: shutdown takes no pointer; the fd is ours.
        if unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_WR) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The byte count of a read or write system call, made again while a signal interrupts it.
fn bytes(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// More than a socket buffer holds, in both directions at once: the writer must wait for room
    /// (the registration made while full) and nothing may be lost or reordered.
    #[tokio::test]
    async fn carries_more_than_the_socket_holds_both_ways() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut a_rd, mut a_wr) = split(a).unwrap();
        let (mut b_rd, mut b_wr) = split(b).unwrap();
        let data: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
        let (d1, d2) = (data.clone(), data.clone());
        let w1 = tokio::spawn(async move {
            a_wr.write_all(&d1).await.unwrap();
            a_wr.shutdown().await.unwrap();
        });
        let w2 = tokio::spawn(async move {
            b_wr.write_all(&d2).await.unwrap();
            b_wr.shutdown().await.unwrap();
        });
        let (mut got_b, mut got_a) = (Vec::new(), Vec::new());
        let both =
            async { tokio::join!(b_rd.read_to_end(&mut got_b), a_rd.read_to_end(&mut got_a)) };
        let (r1, r2) = tokio::time::timeout(std::time::Duration::from_secs(30), both)
            .await
            .expect("a lost wake-up: the transfer stalled");
        r1.unwrap();
        r2.unwrap();
        w1.await.unwrap();
        w2.await.unwrap();
        assert!(
            got_b == data,
            "a to b: {} bytes, not the ones sent",
            got_b.len()
        );
        assert!(
            got_a == data,
            "b to a: {} bytes, not the ones sent",
            got_a.len()
        );
    }

    /// The reason for this module: the peer reading frames does not wake the thread that wrote them
    /// (with tokio's `UnixStream`, each read woke it once). Counted from the kernel's count of the
    /// writing thread's voluntary context switches while it waits for something to read.
    #[test]
    fn draining_the_socket_does_not_wake_the_writing_thread() {
        const FRAMES: usize = 20;
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (mut rd, mut wr) = split(a).unwrap();
                for _ in 0..FRAMES {
                    wr.write_all(&[7u8; 64]).await.unwrap();
                }
                // SAFETY: gettid takes no argument.
                tid_tx.send(unsafe { libc::gettid() }).unwrap();
                let mut one = [0u8; 1];
                rd.read_exact(&mut one).await.unwrap();
            });
        });
        let tid = tid_rx.recv().unwrap();
        let switches = || {
            let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap()
        };
        // Until it waits in epoll for the byte.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let before = switches();
        let mut frame = [0u8; 64];
        for _ in 0..FRAMES {
            std::io::Read::read_exact(&mut b, &mut frame).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let woken = switches() - before;
        std::io::Write::write_all(&mut b, &[1]).unwrap();
        writer.join().unwrap();
        assert!(
            woken < FRAMES as u64 / 4,
            "reading {FRAMES} frames woke the writing thread {woken} times"
        );
    }

    /// Dropping the write half ends the stream for the peer while the read half lives on.
    #[tokio::test]
    async fn dropping_the_write_half_ends_the_peers_stream() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (_a_rd, mut a_wr) = split(a).unwrap();
        let (mut b_rd, _b_wr) = split(b).unwrap();
        a_wr.write_all(b"last").await.unwrap();
        drop(a_wr);
        let mut got = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            b_rd.read_to_end(&mut got),
        )
        .await;
        assert!(read.is_ok(), "the peer never saw the end of the stream");
        assert_eq!(got, b"last");
    }
}
