//! `latch connectors ...`: create, list and revoke connectors.

use std::process::ExitCode;

use anyhow::{Result, bail};
use latch_proto::v1::{
    Connector, CreateConnectorRequest, ListConnectorsRequest, RevokeConnectorRequest,
};
use serde::Serialize;
use tonic::transport::Uri;

use crate::args::ConnectorsCommand;
use crate::client::{Api, ConnectorAdminClient};
use crate::output::{
    OutputFormat, or_dash, print, print_json, print_table, table, timestamp, timestamp_cell,
};

/// The port connectors dial by default (the server's `--connector-listen`).
const CONNECTOR_PORT: u16 = 7701;

/// Runs a `latch connectors` command. `server` is the public API's address, from which the
/// enrollment hint guesses the connector listener's host.
pub async fn run(
    command: ConnectorsCommand,
    api: &Api,
    server: &str,
    output: OutputFormat,
) -> Result<ExitCode> {
    let mut client = api.connectors();
    match command {
        ConnectorsCommand::Create { name, token_ttl } => {
            let request = CreateConnectorRequest {
                name,
                // 0 asks for the server's default.
                token_ttl_secs: token_ttl.map_or(0, |ttl| ttl.as_secs()),
            };
            create(&mut client, request, server, output).await?;
        }
        ConnectorsCommand::List => list(&mut client, output).await?,
        ConnectorsCommand::Revoke { name } => revoke(&mut client, name, output).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A connector as JSON.
#[derive(Serialize)]
struct ConnectorJson {
    id: String,
    name: String,
    state: String,
    connected: bool,
    version: String,
    last_seen: Option<String>,
    integrations: Vec<String>,
    created_at: Option<String>,
    certificate_not_after: Option<String>,
}

impl From<&Connector> for ConnectorJson {
    fn from(connector: &Connector) -> Self {
        Self {
            id: connector.id.clone(),
            name: connector.name.clone(),
            state: connector.state.clone(),
            connected: connector.connected,
            version: connector.version.clone(),
            last_seen: timestamp(connector.last_seen.as_ref()),
            integrations: connector.integrations.clone(),
            created_at: timestamp(connector.created_at.as_ref()),
            certificate_not_after: timestamp(connector.certificate_not_after.as_ref()),
        }
    }
}

/// A new connector as JSON: its enrollment token, the connector, and when the token stops working.
#[derive(Serialize)]
struct CreatedJson {
    token: String,
    connector: ConnectorJson,
    token_expires_at: Option<String>,
}

/// Creates a connector. In table output only the enrollment token goes to standard output.
async fn create(
    client: &mut ConnectorAdminClient,
    request: CreateConnectorRequest,
    server: &str,
    output: OutputFormat,
) -> Result<()> {
    let name = request.name.clone();
    let response = client.create_connector(request).await?.into_inner();
    if response.token.is_empty() {
        bail!(
            "the server created connector {name:?} but sent no enrollment token; revoke it and \
             create another"
        );
    }
    let connector = response.connector.unwrap_or_else(|| Connector {
        name,
        ..Default::default()
    });
    let token_expires_at = timestamp(response.token_expires_at.as_ref());
    match output {
        OutputFormat::Json => print_json(&CreatedJson {
            token: response.token,
            connector: ConnectorJson::from(&connector),
            token_expires_at,
        }),
        OutputFormat::Table => {
            print(&format!("{}\n", response.token))?;
            let until = token_expires_at.map_or_else(String::new, |at| format!(", until {at},"));
            eprintln!(
                "created connector {}; the enrollment token above works once{until} and is not \
                 shown again",
                connector.name
            );
            eprintln!(
                "enroll it on the connector's machine: {}",
                enroll_command(server)
            );
            Ok(())
        }
    }
}

/// The command that enrolls a connector, with the token and the connector's state directory left
/// for the reader to fill in. The host is the API server's; the port is the connector listener's
/// default.
fn enroll_command(server: &str) -> String {
    let host = server
        .parse::<Uri>()
        .ok()
        .and_then(|uri| uri.host().map(str::to_owned))
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "HOST".to_owned());
    format!(
        "latch-connector enroll --server https://{host}:{CONNECTOR_PORT} --token TOKEN \
         --state-dir DIR"
    )
}

/// Lists connectors.
async fn list(client: &mut ConnectorAdminClient, output: OutputFormat) -> Result<()> {
    let connectors = client
        .list_connectors(ListConnectorsRequest {})
        .await?
        .into_inner()
        .connectors;
    match output {
        OutputFormat::Json => print_json(
            &connectors
                .iter()
                .map(ConnectorJson::from)
                .collect::<Vec<_>>(),
        ),
        OutputFormat::Table if connectors.is_empty() => {
            eprintln!("no connectors; `latch connectors create NAME` registers one");
            Ok(())
        }
        OutputFormat::Table => {
            let mut rows = table([
                "NAME",
                "STATE",
                "CONNECTED",
                "VERSION",
                "LAST SEEN",
                "INTEGRATIONS",
                "CERT EXPIRES",
            ]);
            for connector in &connectors {
                rows.add_row(cells(connector));
            }
            print_table(rows)
        }
    }
}

/// The table row of a connector.
fn cells(connector: &Connector) -> [String; 7] {
    [
        connector.name.clone(),
        connector.state.clone(),
        if connector.connected { "yes" } else { "no" }.to_owned(),
        or_dash(&connector.version),
        timestamp_cell(connector.last_seen.as_ref(), "never"),
        or_dash(&connector.integrations.join(",")),
        timestamp_cell(connector.certificate_not_after.as_ref(), "-"),
    ]
}

/// Revokes a connector.
async fn revoke(
    client: &mut ConnectorAdminClient,
    name: String,
    output: OutputFormat,
) -> Result<()> {
    let response = client
        .revoke_connector(RevokeConnectorRequest { name: name.clone() })
        .await?
        .into_inner();
    let connector = response.connector.unwrap_or_else(|| Connector {
        name,
        ..Default::default()
    });
    match output {
        OutputFormat::Json => print_json(&ConnectorJson::from(&connector)),
        OutputFormat::Table => print(&format!(
            "revoked connector {}; its certificate is refused from now on\n",
            connector.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    fn connector() -> Connector {
        Connector {
            id: "01JCONN".to_owned(),
            name: "edge-1".to_owned(),
            state: "enrolled".to_owned(),
            connected: true,
            version: "0.3.0".to_owned(),
            last_seen: at(60),
            integrations: vec!["aws-prod".to_owned(), "pg".to_owned()],
            created_at: at(0),
            certificate_not_after: at(86_400),
        }
    }

    #[test]
    fn connector_rows_show_state_and_dash_blanks() {
        assert_eq!(
            cells(&connector()),
            [
                "edge-1",
                "enrolled",
                "yes",
                "0.3.0",
                "1970-01-01T00:01:00Z",
                "aws-prod,pg",
                "1970-01-02T00:00:00Z"
            ]
        );
        let pending = Connector {
            id: "01JNEW".to_owned(),
            name: "edge-2".to_owned(),
            state: "pending".to_owned(),
            ..Default::default()
        };
        assert_eq!(
            cells(&pending),
            ["edge-2", "pending", "no", "-", "never", "-", "-"]
        );
    }

    #[test]
    fn created_connector_json_has_exactly_the_documented_keys() {
        let json = serde_json::to_value(CreatedJson {
            token: "latch-enroll-v1.ab.cd".to_owned(),
            connector: ConnectorJson::from(&connector()),
            token_expires_at: Some("1970-01-01T01:00:00Z".to_owned()),
        })
        .expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({
                "token": "latch-enroll-v1.ab.cd",
                "connector": {
                    "id": "01JCONN",
                    "name": "edge-1",
                    "state": "enrolled",
                    "connected": true,
                    "version": "0.3.0",
                    "last_seen": "1970-01-01T00:01:00Z",
                    "integrations": ["aws-prod", "pg"],
                    "created_at": "1970-01-01T00:00:00Z",
                    "certificate_not_after": "1970-01-02T00:00:00Z",
                },
                "token_expires_at": "1970-01-01T01:00:00Z",
            })
        );
    }

    #[test]
    fn the_enroll_hint_uses_the_servers_host_and_the_connector_port() {
        assert_eq!(
            enroll_command("http://latch.example.com:7700"),
            "latch-connector enroll --server https://latch.example.com:7701 --token TOKEN --state-dir DIR"
        );
        assert_eq!(
            enroll_command("https://10.0.0.5"),
            "latch-connector enroll --server https://10.0.0.5:7701 --token TOKEN --state-dir DIR"
        );
        assert_eq!(
            enroll_command("http://[::1]:7700"),
            "latch-connector enroll --server https://[::1]:7701 --token TOKEN --state-dir DIR"
        );
        assert_eq!(
            enroll_command("not a url"),
            "latch-connector enroll --server https://HOST:7701 --token TOKEN --state-dir DIR"
        );
    }
}
