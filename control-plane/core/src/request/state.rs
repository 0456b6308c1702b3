//! Request states and the events that move a request between them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for approvals.
    Pending,
    /// Approved (by people, or automatically); grants are about to be sent.
    Approved,
    /// Grant commands are in the outbox; no connector has confirmed all of them yet.
    Granting,
    /// Every grant is applied; the clock runs from the moment the request became active.
    Active,
    /// Revoke commands are in the outbox (expiry, revocation, or a flow that no longer allows it).
    Revoking,
    /// Ended on time: the access expired (or the pending request outlived its TTL).
    Expired,
    /// Ended early by someone, or because a flow, tag or hierarchy change no longer allows it.
    Revoked,
    /// An approver denied it, or the decision engine refused it.
    Denied,
    /// The requester withdrew it before it was granted.
    Cancelled,
    /// Granting failed (a connector refused or could not apply a grant); nothing is left applied.
    Failed,
}

/// What happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// The approvals now satisfy the plan (or the decision was `allow_auto`).
    Approve,
    /// An approver denied it.
    Deny,
    /// The requester withdrew it.
    Cancel,
    /// A pending request outlived its TTL.
    PendingTimedOut,
    /// Grant commands were written to the outbox.
    SendGrants,
    /// Connectors confirmed every grant.
    GrantsApplied,
    /// A connector refused or failed a grant.
    GrantFailed,
    /// The access reached its expiry.
    ExpiryReached,
    /// Someone revoked it, or a change means the flows no longer allow it.
    Revoke,
    /// Connectors confirmed every revoke (after expiry).
    RevokedOnExpiry,
    /// Connectors confirmed every revoke (after a revocation).
    RevokedEarly,
    /// More time was granted within the flow's maximum; the request stays active.
    Extend,
}

/// An event that does not apply to a request in its current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a request that is {from} cannot {event}")]
pub struct IllegalTransition {
    pub from: RequestState,
    pub event: EventName,
}

/// An event's name in messages (`be approved`, `be cancelled`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventName(Event);

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Event::Approve => "be approved",
            Event::Deny => "be denied",
            Event::Cancel => "be cancelled",
            Event::PendingTimedOut => "time out while pending",
            Event::SendGrants => "start granting",
            Event::GrantsApplied => "become active",
            Event::GrantFailed => "fail granting",
            Event::ExpiryReached => "expire",
            Event::Revoke => "be revoked",
            Event::RevokedOnExpiry | Event::RevokedEarly => "finish revoking",
            Event::Extend => "be extended",
        })
    }
}

impl RequestState {
    /// Every state.
    pub const ALL: [RequestState; 10] = [
        RequestState::Pending,
        RequestState::Approved,
        RequestState::Granting,
        RequestState::Active,
        RequestState::Revoking,
        RequestState::Expired,
        RequestState::Revoked,
        RequestState::Denied,
        RequestState::Cancelled,
        RequestState::Failed,
    ];

    /// The state after `event`, or why `event` cannot happen now.
    pub fn apply(self, event: Event) -> Result<RequestState, IllegalTransition> {
        use Event as E;
        use RequestState as S;
        let next = match (self, event) {
            (S::Pending, E::Approve) => S::Approved,
            (S::Pending, E::Deny) => S::Denied,
            (S::Pending | S::Approved, E::Cancel) => S::Cancelled,
            (S::Pending, E::PendingTimedOut) => S::Expired,
            (S::Approved, E::SendGrants) => S::Granting,
            (S::Granting, E::GrantsApplied) => S::Active,
            (S::Granting, E::GrantFailed) => S::Failed,
            // A grant still in flight is revoked too: revoke commands go ahead of grants.
            (S::Granting | S::Active, E::Revoke) => S::Revoking,
            (S::Active, E::ExpiryReached) => S::Revoking,
            (S::Active, E::Extend) => S::Active,
            (S::Revoking, E::RevokedOnExpiry) => S::Expired,
            (S::Revoking, E::RevokedEarly) => S::Revoked,
            (from, event) => {
                return Err(IllegalTransition {
                    from,
                    event: EventName(event),
                });
            }
        };
        Ok(next)
    }

    /// Whether the request's life is over: no event applies any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RequestState::Expired
                | RequestState::Revoked
                | RequestState::Denied
                | RequestState::Cancelled
                | RequestState::Failed
        )
    }

    /// The state's name, as in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Granting => "granting",
            RequestState::Active => "active",
            RequestState::Revoking => "revoking",
            RequestState::Expired => "expired",
            RequestState::Revoked => "revoked",
            RequestState::Denied => "denied",
            RequestState::Cancelled => "cancelled",
            RequestState::Failed => "failed",
        }
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        RequestState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = RequestState::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "{text:?} is not a request state (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [Event; 12] = [
        Event::Approve,
        Event::Deny,
        Event::Cancel,
        Event::PendingTimedOut,
        Event::SendGrants,
        Event::GrantsApplied,
        Event::GrantFailed,
        Event::ExpiryReached,
        Event::Revoke,
        Event::RevokedOnExpiry,
        Event::RevokedEarly,
        Event::Extend,
    ];

    /// The documented table (docs/request-lifecycle.md), written out independently of `apply`.
    const ALLOWED: &[(RequestState, Event, RequestState)] = {
        use Event as E;
        use RequestState as S;
        &[
            (S::Pending, E::Approve, S::Approved),
            (S::Pending, E::Deny, S::Denied),
            (S::Pending, E::Cancel, S::Cancelled),
            (S::Pending, E::PendingTimedOut, S::Expired),
            (S::Approved, E::Cancel, S::Cancelled),
            (S::Approved, E::SendGrants, S::Granting),
            (S::Granting, E::GrantsApplied, S::Active),
            (S::Granting, E::GrantFailed, S::Failed),
            (S::Granting, E::Revoke, S::Revoking),
            (S::Active, E::Revoke, S::Revoking),
            (S::Active, E::ExpiryReached, S::Revoking),
            (S::Active, E::Extend, S::Active),
            (S::Revoking, E::RevokedOnExpiry, S::Expired),
            (S::Revoking, E::RevokedEarly, S::Revoked),
        ]
    };

    #[test]
    fn exactly_the_documented_transitions_are_allowed() {
        for state in RequestState::ALL {
            for event in EVENTS {
                let expected = ALLOWED
                    .iter()
                    .find(|(s, e, _)| *s == state && *e == event)
                    .map(|(_, _, to)| *to);
                assert_eq!(state.apply(event).ok(), expected, "{state} + {event:?}");
            }
        }
    }

    #[test]
    fn terminal_states_accept_no_event() {
        for state in RequestState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for event in EVENTS {
                assert!(state.apply(event).is_err(), "{state} accepted {event:?}");
            }
        }
        let terminal: Vec<&str> = RequestState::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            terminal,
            ["expired", "revoked", "denied", "cancelled", "failed"]
        );
    }

    #[test]
    fn every_state_is_reachable_from_pending() {
        let mut seen = vec![RequestState::Pending];
        let mut frontier = vec![RequestState::Pending];
        while let Some(state) = frontier.pop() {
            for event in EVENTS {
                if let Ok(next) = state.apply(event)
                    && !seen.contains(&next)
                {
                    seen.push(next);
                    frontier.push(next);
                }
            }
        }
        seen.sort();
        assert_eq!(seen, RequestState::ALL.to_vec());
    }

    #[test]
    fn refusals_name_the_state_and_the_event() {
        let err = RequestState::Denied
            .apply(Event::Approve)
            .expect_err("terminal");
        assert_eq!(
            err.to_string(),
            "a request that is denied cannot be approved"
        );
        let err = RequestState::Active
            .apply(Event::Cancel)
            .expect_err("too late");
        assert_eq!(
            err.to_string(),
            "a request that is active cannot be cancelled"
        );
    }

    #[test]
    fn names_round_trip() {
        for state in RequestState::ALL {
            assert_eq!(state.as_str().parse::<RequestState>(), Ok(state));
            let json = serde_json::to_string(&state).expect("serialize");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert_eq!(
            "done".parse::<RequestState>().expect_err("unknown"),
            "\"done\" is not a request state (expected one of: pending, approved, granting, active, revoking, expired, revoked, denied, cancelled, failed)"
        );
    }
}
