//! Wake-ups: when something changes in a run queue (a run submitted, finished,
//! cancelled), the processes waiting on it are told at once instead of polling.
//!
//! In one process, a counter in a [`watch`] channel. Across processes on one machine,
//! each process binds a Unix datagram socket in the directory `<database>.wake/`; a
//! change sends one byte to every socket there (a socket whose process is gone is
//! removed); a cancel request sends another byte, so a worker in another process stops
//! the run at once. Where sockets cannot be used, waiters fall back to bounded backoff
//! polling.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{watch, Notify};

/// The longest a waiter sleeps without a wake-up before it looks again (the fallback
/// when another process's wake-up cannot reach it).
pub const MAX_POLL: Duration = Duration::from_millis(500);

/// Wake-ups of one queue handle.
pub(crate) struct Wake {
    changes: watch::Sender<u64>,
    /// Cancels asked for (here or in another process): a worker looks at once whether
    /// one of its runs is concerned, instead of at its next heartbeat.
    cancels: watch::Sender<u64>,
    /// This process's socket, and the task that tells the others.
    remote: Option<Arc<Remote>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The byte a change sends to the other processes.
const CHANGED: u8 = 1;
/// The byte a cancel request sends (it is a change too).
const CANCEL: u8 = 2;

/// Telling the other processes: done by a task of its own, off the caller's path (a
/// commit rings; the sends and the directory reading are not its cost), which
/// coalesces the rings that come while it sends into one more round.
struct Remote {
    /// The wake-up directory and this process's socket in it.
    dir: PathBuf,
    me: PathBuf,
    sender: UnixDatagram,
    ring: Notify,
    /// A cancel was rung since the last round.
    cancel: AtomicBool,
    /// The other processes' sockets, read again when the directory changes (a socket
    /// bound or removed changes its modification time) and at least every
    /// [`PEERS_FRESH`] (modification times are coarse: two changes a few milliseconds
    /// apart may share one).
    peers: Mutex<Peers>,
}

/// How long a reading of the wake-up directory is trusted without reading it again.
const PEERS_FRESH: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Peers {
    modified: Option<SystemTime>,
    read_at: Option<Instant>,
    sockets: Vec<PathBuf>,
}

impl Wake {
    /// Wake-ups for the database at `db`: in this process always; across processes
    /// when a runtime is running and the socket can be bound.
    pub(crate) fn open(db: &Path) -> Arc<Wake> {
        let (changes, _) = watch::channel(0u64);
        let (cancels, _) = watch::channel(0u64);
        let mut wake = Wake {
            changes,
            cancels,
            remote: None,
            tasks: Vec::new(),
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            if let Some((dir, me, socket)) = bind(db) {
                let _guard = handle.enter();
                // The sender is non-blocking: a peer whose buffer is full has wake-ups
                // pending already (a blocking send there would stall this runtime's
                // thread while the peer's listener, maybe on the same runtime, could not
                // drain it: a deadlock).
                let sender =
                    UnixDatagram::unbound().and_then(|s| s.set_nonblocking(true).map(|()| s));
                if let (Ok(socket), Ok(sender)) =
                    (tokio::net::UnixDatagram::from_std(socket), sender)
                {
                    let (changes, cancels) = (wake.changes.clone(), wake.cancels.clone());
                    wake.tasks.push(handle.spawn(async move {
                        let mut buf = [0u8; 16];
                        while let Ok(n) = socket.recv(&mut buf).await {
                            changes.send_modify(|n| *n = n.wrapping_add(1));
                            if buf[..n].contains(&CANCEL) {
                                cancels.send_modify(|n| *n = n.wrapping_add(1));
                            }
                        }
                    }));
                    let remote = Arc::new(Remote {
                        dir,
                        me,
                        sender,
                        ring: Notify::new(),
                        cancel: AtomicBool::new(false),
                        peers: Mutex::default(),
                    });
                    let ringer = Arc::clone(&remote);
                    wake.tasks.push(handle.spawn(async move {
                        loop {
                            ringer.ring.notified().await;
                            ringer.send_all();
                        }
                    }));
                    wake.remote = Some(remote);
                }
            }
        }
        Arc::new(wake)
    }

    /// A receiver that sees every later [`ring`](Self::ring), here or in another process.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A receiver that sees every later [`ring_cancel`](Self::ring_cancel), here or in
    /// another process.
    pub(crate) fn subscribe_cancels(&self) -> watch::Receiver<u64> {
        self.cancels.subscribe()
    }

    /// Tell this process's waiters only.
    pub(crate) fn ring_local(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Tell every waiter, here and in the other processes.
    pub(crate) fn ring(&self) {
        self.ring_local();
        if let Some(remote) = &self.remote {
            remote.ring.notify_one();
        }
    }

    /// Tell every waiter that a cancel was asked for, here and in the other processes.
    pub(crate) fn ring_cancel(&self) {
        self.cancels.send_modify(|n| *n = n.wrapping_add(1));
        if let Some(remote) = &self.remote {
            remote.cancel.store(true, Ordering::Release);
        }
        self.ring();
    }
}

impl Remote {
    /// One round: a byte to every other process's socket.
    fn send_all(&self) {
        let byte = if self.cancel.swap(false, Ordering::AcqRel) {
            CANCEL
        } else {
            CHANGED
        };
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let modified = std::fs::metadata(&self.dir).and_then(|m| m.modified()).ok();
        let stale = peers.read_at.is_none_or(|at| at.elapsed() >= PEERS_FRESH);
        if modified.is_none() || modified != peers.modified || stale {
            peers.modified = modified;
            peers.read_at = Some(Instant::now());
            peers.sockets = std::fs::read_dir(&self.dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|entry| entry.path())
                        .filter(|path| {
                            *path != self.me && path.extension().is_some_and(|e| e == "sock")
                        })
                        .collect()
                })
                .unwrap_or_default();
        }
        let mut gone = false;
        for path in &peers.sockets {
            if let Err(error) = self.sender.send_to(&[byte], path) {
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) {
                    // Its process is gone.
                    let _ = std::fs::remove_file(path);
                    gone = true;
                }
            }
        }
        if gone {
            peers.read_at = None;
        }
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(remote) = &self.remote {
            let _ = std::fs::remove_file(&remote.me);
        }
    }
}

/// The wake-up directory of `db`, and a fresh socket bound in it.
fn bind(db: &Path) -> Option<(PathBuf, PathBuf, UnixDatagram)> {
    if db == Path::new(":memory:") {
        return None;
    }
    let mut dir = db.as_os_str().to_owned();
    dir.push(".wake");
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).ok()?;
    let dir = std::fs::canonicalize(&dir).ok()?;
    let path = dir.join(format!(
        "{}-{}.sock",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    // A socket path is at most ~107 bytes: a longer one gets no cross-process wake-ups.
    if path.as_os_str().len() >= 100 {
        return None;
    }
    let socket = UnixDatagram::bind(&path).ok()?;
    socket.set_nonblocking(true).ok()?;
    Some((dir, path, socket))
}
