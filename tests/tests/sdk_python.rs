//! SDK proof: a Python client generated from `proto/` by grpcio-tools calls the running server.
//!
//! Needs the Python from the venv that `scripts/test.sh` creates (`LATCH_TEST_PYTHON`).

use latch_e2e::{Server, repo_root};

#[test]
fn python_client_generated_from_the_protos_talks_to_the_server() {
    let python = std::env::var("LATCH_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("LATCH_TEST_PYTHON is not set: run scripts/test.sh, which makes a venv with grpcio-tools and sets it")
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"), None);
    let output = std::process::Command::new(python)
        .arg(repo_root().join("tests/sdk/python/smoke.py"))
        .args(["--server", &server.listen, "--token-file"])
        .arg(server.data_dir.join("admin.token"))
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "smoke.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("json from smoke.py");
    assert_eq!(result["health"], "SERVING");
    assert_eq!(
        result["applied"],
        serde_json::json!([{ "name": "sdk-python", "version": 1, "outcome": "APPLY_OUTCOME_CREATED" }])
    );
    assert_eq!(result["listed"], serde_json::json!(["sdk-python"]));
    assert_eq!(result["without_token"], "UNAUTHENTICATED");
}
