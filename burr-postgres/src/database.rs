//! Which database a persister talks to: its URL parsed into a connection configuration,
//! and its name as errors show it (the URL without the password).

use std::error::Error;
use std::path::PathBuf;

use burr_core::persistence::PersistenceError;
use tokio_postgres::config::Host;

/// A database to connect to.
#[derive(Clone)]
pub(crate) struct Target {
    /// How to connect.
    pub(crate) config: tokio_postgres::Config,
    /// The URL without its password: what errors name.
    pub(crate) name: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Target {
    /// Parse a `postgres://user:password@host:port/dbname` URL (or a `key=value`
    /// connection string). A malformed one is [`PersistenceError::Open`] naming it (its
    /// password left out as far as it can be told).
    pub(crate) fn parse(url: &str) -> Result<Target, PersistenceError> {
        match url.parse::<tokio_postgres::Config>() {
            Ok(config) => Ok(Target {
                name: describe(&config),
                config,
            }),
            Err(error) => Err(PersistenceError::Open {
                path: PathBuf::from(redact_text(url)),
                source: Box::new(error),
            }),
        }
    }

    /// [`PersistenceError::Database`] for `operation` on this database.
    pub(crate) fn error(
        &self,
        operation: &'static str,
        source: impl Error + Send + Sync + 'static,
    ) -> PersistenceError {
        PersistenceError::Database {
            database: self.name.clone(),
            operation,
            source: Box::new(source),
        }
    }

    /// [`PersistenceError::Open`]: this database cannot be connected to.
    pub(crate) fn open_error(
        &self,
        source: impl Error + Send + Sync + 'static,
    ) -> PersistenceError {
        PersistenceError::Open {
            path: PathBuf::from(&self.name),
            source: Box::new(source),
        }
    }

    /// [`PersistenceError::Closed`] for this database.
    pub(crate) fn closed(&self) -> PersistenceError {
        PersistenceError::Closed {
            path: PathBuf::from(&self.name),
        }
    }

    /// This database's name as a path (the errors of burr-core name files).
    pub(crate) fn path(&self) -> PathBuf {
        PathBuf::from(&self.name)
    }
}

/// `postgres://user@host:port/dbname` of a configuration: everything but the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let mut name = String::from("postgres://");
    if let Some(user) = config.get_user() {
        name.push_str(user);
        name.push('@');
    }
    let ports = config.get_ports();
    for (i, host) in config.get_hosts().iter().enumerate() {
        if i > 0 {
            name.push(',');
        }
        match host {
            Host::Tcp(host) => name.push_str(host),
            Host::Unix(path) => name.push_str(&path.display().to_string()),
        }
        if let Some(port) = ports.get(i).or(ports.first()) {
            name.push_str(&format!(":{port}"));
        }
    }
    name.push('/');
    if let Some(dbname) = config.get_dbname() {
        name.push_str(dbname);
    }
    name
}

/// A connection string that did not parse, with what looks like a password removed.
fn redact_text(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        // postgres://user:password@host...: the password is between the first ':' of the
        // user part and the last '@'.
        if let Some(at) = rest.rfind('@') {
            let (user, host) = rest.split_at(at);
            let user = user.split(':').next().unwrap_or_default();
            return format!("{scheme}://{user}:***{host}");
        }
        return url.to_owned();
    }
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => "password=***".to_owned(),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests_database {
    use super::*;

    #[test]
    fn a_name_leaves_the_password_out() {
        let target = Target::parse("postgres://burr:secret@db.example:5433/runs").unwrap();
        assert_eq!(target.name, "postgres://burr@db.example:5433/runs");
        let target = Target::parse("host=/tmp port=6000 user=u password=secret dbname=d").unwrap();
        assert_eq!(target.name, "postgres://u@/tmp:6000/d");
    }

    #[test]
    fn a_malformed_url_is_an_open_error_without_its_password() {
        let error = Target::parse("postgres://burr:secret@host:notaport/db").unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, PersistenceError::Open { .. }), "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("burr:***@host:notaport/db"), "{text}");
        let error = Target::parse("host=h password=secret port=x").unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
