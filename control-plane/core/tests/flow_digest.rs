//! The stored form (serde JSON) and the digest of a flow's content.

mod common;

use common::{automatic_flow, design_example, tags};
use latch_core::flow::FlowSpec;

#[test]
fn equal_content_has_an_equal_digest() {
    let digest = design_example().digest();
    assert_eq!(digest.len(), 64);
    assert!(
        digest
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(design_example().digest(), digest);
    // The same content read from differently written YAML gives the same digest.
    let reparsed = latch_core::flow::parse_yaml(&design_example().to_yaml());
    assert_eq!(reparsed.flows[0].digest(), digest);
}

#[test]
fn tag_insertion_order_does_not_change_the_digest() {
    let mut a = design_example();
    a.targets[0].include.tags = tags(&[("env", "prod"), ("team", "core")]);
    let mut b = design_example();
    b.targets[0].include.tags = tags(&[("team", "core"), ("env", "prod")]);
    assert_eq!(a.digest(), b.digest());
}

/// A change to make to a flow.
type Change = Box<dyn Fn(&mut FlowSpec)>;

#[test]
fn any_change_of_content_changes_the_digest() {
    let base = design_example().digest();
    let changes: Vec<(&str, Change)> = vec![
        ("description", Box::new(|f| f.description = "x".into())),
        (
            "permission",
            Box::new(|f| f.targets[0].permissions.push("Admin".into())),
        ),
        (
            "max",
            Box::new(|f| {
                if let Some(d) = f.duration.as_mut() {
                    d.max += std::time::Duration::from_secs(1);
                }
            }),
        ),
        (
            "requester order",
            Box::new(|f| f.requesters.any_of.reverse()),
        ),
        (
            "can approve",
            Box::new(|f| {
                if let Some(a) = f.approval.as_mut() {
                    a.requester_can_approve = true;
                }
            }),
        ),
        (
            "timeframe end",
            Box::new(|f| {
                if let Some(t) = f.settings.timeframe.as_mut() {
                    t.to = jiff::civil::time(19, 1, 0, 0);
                }
            }),
        ),
    ];
    for (what, change) in changes {
        let mut flow = design_example();
        change(&mut flow);
        assert_ne!(
            flow.digest(),
            base,
            "changing the {what} must change the digest"
        );
    }
}

#[test]
fn serde_json_round_trips_exactly() {
    for flow in [design_example(), automatic_flow("auto")] {
        let json = serde_json::to_string(&flow).expect("serializes");
        let back: FlowSpec = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, flow);
        assert_eq!(flow.canonical_json(), json);
    }
}

#[test]
fn the_stored_form_uses_the_yaml_words() {
    let json: serde_json::Value =
        serde_json::from_str(&design_example().canonical_json()).expect("valid json");
    assert_eq!(json["kind"], "self_serve");
    assert_eq!(
        json["requesters"]["any_of"][0],
        serde_json::json!({ "group": "engineering" })
    );
    assert_eq!(json["approval"]["mode"], "all_of");
    assert_eq!(json["approval"]["groups"][0]["approvers"][0], "manager");
    assert_eq!(json["settings"]["timeframe"]["from"], "08:00");
    assert_eq!(json["settings"]["timeframe"]["days"][0], "mon");
}

#[test]
fn a_time_with_seconds_survives_the_json_round_trip() {
    let mut flow = design_example();
    if let Some(t) = flow.settings.timeframe.as_mut() {
        t.from = jiff::civil::time(8, 0, 30, 5);
    }
    let back: FlowSpec = serde_json::from_str(&flow.canonical_json()).expect("deserializes");
    assert_eq!(back, flow);
}
