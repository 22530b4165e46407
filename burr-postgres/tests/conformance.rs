//! `PostgresPersister` passes burr-core's persister conformance suite, every check, on a
//! fresh database per check (the throwaway server of `burr_postgres::testing`, or
//! `BURR_TEST_PG_URL`'s).

use burr_core::testing::Conformance;
use burr_postgres::testing::{run_sql, TestServer};
use burr_postgres::PostgresPersister;

/// Connect from the synchronous `fresh` closure of the suite: the connection's tasks run
/// on the test's runtime.
fn connect(url: &str) -> PostgresPersister {
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(PostgresPersister::connect(url))
    })
    .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    let server = TestServer::shared();
    let report = Conformance::new(move || connect(&server.fresh_database()))
        .corrupt_with(|persister: &PostgresPersister, app_id, sequence_id| {
            let url = database_url(persister);
            run_sql(
                &url,
                &format!(
                    "UPDATE burr_checkpoints SET status = 'exploded' WHERE sequence_id = {sequence_id} \
                     AND app = (SELECT id FROM burr_apps WHERE app_id = '{app_id}')"
                ),
            )
            .expect("corrupt a row");
        })
        .run()
        .await;
    assert!(report.skipped.is_empty(), "{report:?}");
}

/// The URL of the persister's database (its name without a password: the test server
/// trusts its users).
fn database_url(persister: &PostgresPersister) -> String {
    persister.database().to_owned()
}
