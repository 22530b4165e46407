//! A PostgreSQL server for tests, that needs nobody (feature `testing`).
//!
//! [`TestServer::shared`] gives every test of a process the same server, and each test
//! its own database ([`fresh_database`](TestServer::fresh_database)):
//!
//! - with `BURR_TEST_PG_URL` set (`postgres://user@host:port/db`, a role that may
//!   `CREATE DATABASE`), that server (its test databases, `burr_test_*`, are left there
//!   for inspection: drop them when done);
//! - otherwise a throwaway one: `initdb` (trust authentication) into a temporary
//!   directory, as the `postgres` user when running as root, started with `pg_ctl` on a
//!   free loopback port with its socket in that directory. It is stopped and its
//!   directory removed when the test process exits (a watcher process sees to it, even
//!   after a panic), or when an owned [`TestServer::start`] is dropped.
//!
//! The server binaries are looked for in `$BURR_TEST_PG_BIN`, then
//! `/usr/lib/postgresql/<version>/bin` (the newest). Without them, starting fails with
//! a message saying how to provide a server: a test that needs one fails, it is never
//! skipped silently.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What to do when no server can be had.
const HOW_TO_PROVIDE: &str = "the PostgreSQL tests need a server: install one \
(`apt-get install postgresql`; the tests then start a throwaway server from \
/usr/lib/postgresql/<version>/bin), or point BURR_TEST_PG_URL at an existing one \
(postgres://user@host:port/db, a role that may CREATE DATABASE)";

/// A PostgreSQL server the tests may create databases on.
#[derive(Debug)]
pub struct TestServer {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// `BURR_TEST_PG_URL`.
    External { url: String },
    /// A server this process started.
    Owned(Owned),
}

#[derive(Debug)]
struct Owned {
    /// The temporary directory: data, socket and log.
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    /// Whether dropping stops it (not for the shared one, which the watcher stops).
    stop_on_drop: bool,
}

static SHARED: OnceLock<Result<TestServer, String>> = OnceLock::new();
static DATABASES: AtomicU64 = AtomicU64::new(0);

impl TestServer {
    /// The server of this test process, started by the first call. Panics, saying how to
    /// provide a server, when there is none.
    pub fn shared() -> &'static TestServer {
        match Self::try_shared() {
            Ok(server) => server,
            Err(message) => panic!("{message}"),
        }
    }

    /// [`shared`](Self::shared), with the reason as an error instead of a panic.
    pub fn try_shared() -> Result<&'static TestServer, String> {
        SHARED
            .get_or_init(|| Self::open(false))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A server of its own (stopped when dropped), or `BURR_TEST_PG_URL`'s.
    pub fn start() -> Result<TestServer, String> {
        Self::open(true)
    }

    fn open(stop_on_drop: bool) -> Result<TestServer, String> {
        if let Ok(url) = std::env::var("BURR_TEST_PG_URL") {
            if !url.trim().is_empty() {
                return Ok(TestServer {
                    kind: Kind::External { url },
                });
            }
        }
        let bin = find_binaries()?;
        let owned = Owned::start(bin, stop_on_drop)?;
        Ok(TestServer {
            kind: Kind::Owned(owned),
        })
    }

    /// The URL of the server's administrative database (`postgres`, as a superuser for a
    /// throwaway server): for a test that needs to reach around the persister (to end a
    /// backend with `pg_terminate_backend`, say).
    pub fn admin_url(&self) -> String {
        match &self.kind {
            Kind::External { url } => url.clone(),
            Kind::Owned(owned) => owned.url("postgres"),
        }
    }

    /// The URL of a new, empty database on the server (its name unique to this call).
    /// Panics when it cannot be created.
    pub fn fresh_database(&self) -> String {
        let name = format!(
            "burr_test_{}_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let admin = self.admin_url();
        let create = format!("CREATE DATABASE {name}");
        let created = run_sql(&admin, &create);
        if let Err(error) = created {
            panic!(
                "cannot create test database `{name}` on {}: {error}",
                self.admin_url()
            );
        }
        with_database(&admin, &name)
    }

    /// The port of a throwaway server (`None` for `BURR_TEST_PG_URL`'s).
    pub fn port(&self) -> Option<u16> {
        match &self.kind {
            Kind::External { .. } => None,
            Kind::Owned(owned) => Some(owned.port),
        }
    }
}

/// Run one statement on the database at `url`, on a thread and runtime of its own (so it
/// may be called from async code).
pub fn run_sql(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            let driver = tokio::spawn(connection);
            let done = client.batch_execute(&sql).await.map_err(|e| {
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |db| db.message().to_owned())
            });
            drop(client);
            let _ = driver.await;
            done
        })
    })
    .join()
    .map_err(|_| "the SQL thread panicked".to_owned())?
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}://{host}/{name}")
        }
        // A key=value connection string: a later dbname wins.
        None => return format!("{url} dbname={name}"),
    };
    match query {
        Some(query) => format!("{base}?{query}"),
        None => base,
    }
}

/// The directory of the server binaries.
fn find_binaries() -> Result<PathBuf, String> {
    if let Ok(bin) = std::env::var("BURR_TEST_PG_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.join("initdb").is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "BURR_TEST_PG_BIN={} has no initdb; {HOW_TO_PROVIDE}",
                bin.display()
            ))
        };
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let version = entry.file_name().to_str()?.parse().ok()?;
                    let bin = entry.path().join("bin");
                    bin.join("initdb").is_file().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        format!(
            "no PostgreSQL server binaries in {}: {HOW_TO_PROVIDE}",
            root.display()
        )
    })
}

impl Owned {
    fn start(bin: PathBuf, stop_on_drop: bool) -> Result<Owned, String> {
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("burr-pg-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?
            .keep();
        let mut server = Owned {
            dir,
            bin,
            port: 0,
            as_postgres,
            stop_on_drop,
        };
        if let Err(error) = server.init_and_start() {
            server.stop();
            return Err(error);
        }
        if !stop_on_drop {
            server.watch();
        }
        Ok(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A command running `program` of the server binaries, as `postgres` when root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    fn run(&self, mut command: Command, what: &str) -> Result<(), String> {
        let output = command
            .output()
            .map_err(|e| format!("cannot run {what}: {e}; {HOW_TO_PROVIDE}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} failed ({}): {}\n(server log: {})",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                self.dir.join("log").display()
            ))
        }
    }

    fn init_and_start(&mut self) -> Result<(), String> {
        if self.as_postgres {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&self.dir)
                .status()
                .map_err(|e| format!("cannot run chown: {e}"))?;
            if !chown.success() {
                return Err(format!(
                    "cannot give {} to the postgres user (chown: {chown})",
                    self.dir.display()
                ));
            }
        }
        let mut initdb = self.command("initdb");
        initdb.arg("-D").arg(self.data()).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        self.run(initdb, "initdb")?;
        // A few tries: another process may take the free port before the server does.
        let mut last = String::new();
        for _ in 0..3 {
            self.port = free_port()?;
            let mut start = self.command("pg_ctl");
            start
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.join("log"))
                .arg("-o")
                .arg(format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
                    self.port,
                    self.dir.display()
                ))
                .args(["-w", "-t", "60", "start"]);
            match self.run(start, "pg_ctl start") {
                Ok(()) => return self.wait_ready(),
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match run_sql(&self.url("postgres"), "SELECT 1") {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() > deadline => {
                    return Err(format!("the test server did not become ready: {error}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// A process that stops the server and removes its directory once this process has
    /// exited, however it exits.
    fn watch(&self) {
        let runuser = if self.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {runuser}'{pg_ctl}' -D '{data}' -m immediate -w stop >/dev/null 2>&1; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data().display(),
            dir = self.dir.display(),
        );
        let spawned = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(error) = spawned {
            eprintln!("burr-postgres testing: cannot watch the test server (it will outlive this process): {error}");
        }
    }

    fn stop(&self) {
        if self.data().join("postmaster.pid").exists() {
            let mut stop = self.command("pg_ctl");
            stop.arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"]);
            let _ = stop.status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.stop();
        }
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

#[cfg(test)]
mod tests_testing {
    use super::with_database;

    #[test]
    fn a_database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5/db?sslmode=disable", "x"),
            "postgres://u:p@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("host=h user=u", "x"),
            "host=h user=u dbname=x"
        );
    }
}
