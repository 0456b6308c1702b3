//! Any bytes decoded as a list of proto flows and validated: no panic, and every accepted flow
//! converts back to the same proto.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(list) = latch_proto::v1::AccessFlowSpecList::decode(data) else { return };
    let parsed = latch_core::flow::from_proto(&list.flows);
    for flow in &parsed.flows {
        let again = latch_core::flow::from_proto(std::slice::from_ref(&flow.to_proto()));
        assert_eq!(again.flows.as_slice(), std::slice::from_ref(flow), "proto round-trip changed the flow");
    }
});
