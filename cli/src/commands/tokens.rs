//! `latch tokens ...`: create, list and revoke API tokens.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use latch_proto::v1::{ApiToken, CreateTokenRequest, ListTokensRequest, RevokeTokenRequest};
use serde::Serialize;

use crate::args::TokensCommand;
use crate::client::{Api, TokenClient};
use crate::output::{
    OutputFormat, print, print_json, print_table, table, timestamp, timestamp_cell,
};

/// Tokens asked for per page when listing.
const PAGE_SIZE: u32 = 200;

/// Runs a `latch tokens` command.
pub async fn run(command: TokensCommand, api: &Api, output: OutputFormat) -> Result<ExitCode> {
    let mut client = api.tokens();
    match command {
        TokensCommand::Create {
            user,
            admin,
            ttl,
            description,
        } => {
            let ttl = ttl
                .map(prost_types::Duration::try_from)
                .transpose()
                .context("the --ttl is too long")?;
            let request = CreateTokenRequest {
                user,
                admin,
                ttl,
                description,
            };
            create(&mut client, request, output).await?;
        }
        TokensCommand::List { all } => list(&mut client, all, output).await?,
        TokensCommand::Revoke { id } => revoke(&mut client, id, output).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A new token as JSON: the secret and what it is for.
#[derive(Serialize)]
struct CreatedJson {
    token: String,
    id: String,
    user: String,
    admin: bool,
    expires_at: Option<String>,
}

/// Creates a token. In table output only the secret goes to standard output.
async fn create(
    client: &mut TokenClient,
    request: CreateTokenRequest,
    output: OutputFormat,
) -> Result<()> {
    let response = client.create_token(request).await?.into_inner();
    let token = response.token.unwrap_or_default();
    if response.secret.is_empty() {
        bail!(
            "the server created token {:?} but sent no secret; revoke it and try again",
            token.id
        );
    }
    let expires_at = timestamp(token.expires_at.as_ref());
    match output {
        OutputFormat::Json => print_json(&CreatedJson {
            token: response.secret,
            id: token.id,
            user: token.user,
            admin: token.admin,
            expires_at,
        }),
        OutputFormat::Table => {
            print(&format!("{}\n", response.secret))?;
            let role = if token.admin { "admin token" } else { "token" };
            let expiry =
                expires_at.map_or_else(|| "never expires".to_owned(), |at| format!("expires {at}"));
            eprintln!(
                "created {role} {} for {} ({expiry}); the secret above is not shown again",
                token.id, token.user
            );
            Ok(())
        }
    }
}

/// A token as JSON, never with its secret.
#[derive(Serialize)]
struct TokenJson {
    id: String,
    user: String,
    admin: bool,
    description: String,
    created_at: Option<String>,
    created_by: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
}

impl From<&ApiToken> for TokenJson {
    fn from(token: &ApiToken) -> Self {
        Self {
            id: token.id.clone(),
            user: token.user.clone(),
            admin: token.admin,
            description: token.description.clone(),
            created_at: timestamp(token.created_at.as_ref()),
            created_by: token.created_by.clone(),
            expires_at: timestamp(token.expires_at.as_ref()),
            revoked_at: timestamp(token.revoked_at.as_ref()),
        }
    }
}

/// Lists tokens, following pages to the end.
async fn list(
    client: &mut TokenClient,
    include_inactive: bool,
    output: OutputFormat,
) -> Result<()> {
    let tokens = list_all(client, include_inactive).await?;
    match output {
        OutputFormat::Json => print_json(&tokens.iter().map(TokenJson::from).collect::<Vec<_>>()),
        OutputFormat::Table if tokens.is_empty() => {
            eprintln!(
                "no tokens{}",
                if include_inactive {
                    ""
                } else {
                    " active; --all shows revoked and expired ones"
                }
            );
            Ok(())
        }
        OutputFormat::Table => {
            let mut rows = table([
                "ID",
                "USER",
                "ADMIN",
                "CREATED",
                "EXPIRES",
                "REVOKED",
                "DESCRIPTION",
            ]);
            for token in &tokens {
                rows.add_row(cells(token));
            }
            print_table(rows)
        }
    }
}

/// Every page of tokens.
async fn list_all(client: &mut TokenClient, include_inactive: bool) -> Result<Vec<ApiToken>> {
    let mut tokens = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListTokensRequest {
            page_size: PAGE_SIZE,
            page_token: page_token.clone(),
            include_inactive,
        };
        let page = client.list_tokens(request).await?.into_inner();
        tokens.extend(page.tokens);
        if page.next_page_token.is_empty() {
            return Ok(tokens);
        }
        if page.next_page_token == page_token {
            bail!("the server returned the same page twice; stopped listing");
        }
        page_token = page.next_page_token;
    }
}

/// The table row of a token.
fn cells(token: &ApiToken) -> [String; 7] {
    [
        token.id.clone(),
        token.user.clone(),
        if token.admin { "yes" } else { "no" }.to_owned(),
        timestamp_cell(token.created_at.as_ref(), "-"),
        timestamp_cell(token.expires_at.as_ref(), "never"),
        timestamp_cell(token.revoked_at.as_ref(), "-"),
        token.description.clone(),
    ]
}

/// Revokes a token.
async fn revoke(client: &mut TokenClient, id: String, output: OutputFormat) -> Result<()> {
    let response = client
        .revoke_token(RevokeTokenRequest { id: id.clone() })
        .await?
        .into_inner();
    let token = response.token.unwrap_or_else(|| ApiToken {
        id,
        ..Default::default()
    });
    match output {
        OutputFormat::Json => print_json(&TokenJson::from(&token)),
        OutputFormat::Table => print(&format!("revoked token {} of {}\n", token.id, token.user)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rows_say_never_and_dash_for_missing_times() {
        let token = ApiToken {
            id: "abc".to_owned(),
            user: "ops@example.com".to_owned(),
            admin: true,
            created_at: Some(prost_types::Timestamp {
                seconds: 86_400,
                nanos: 0,
            }),
            ..Default::default()
        };
        assert_eq!(
            cells(&token),
            [
                "abc",
                "ops@example.com",
                "yes",
                "1970-01-02T00:00:00Z",
                "never",
                "-",
                ""
            ]
        );
    }

    #[test]
    fn created_token_json_has_exactly_the_documented_keys() {
        let json = serde_json::to_value(CreatedJson {
            token: "latch_abc.s3cret".to_owned(),
            id: "abc".to_owned(),
            user: "ops@example.com".to_owned(),
            admin: false,
            expires_at: Some("2030-01-01T00:00:00Z".to_owned()),
        })
        .expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({
                "token": "latch_abc.s3cret",
                "id": "abc",
                "user": "ops@example.com",
                "admin": false,
                "expires_at": "2030-01-01T00:00:00Z",
            })
        );
    }
}
