//! What several of burr-postgres's test files use.

use tokio_postgres::NoTls;

/// A plain connection to the database at `url`.
pub async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The transactions committed in the database so far, as PostgreSQL counts them (a
/// backend reports its count at the latest when it exits).
pub async fn transactions(url: &str) -> i64 {
    client(url)
        .await
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}
