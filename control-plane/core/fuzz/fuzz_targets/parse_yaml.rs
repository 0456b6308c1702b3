//! Any text given to the YAML flow parser: it must not panic, and every flow it accepts must
//! round-trip through its own YAML rendering unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = latch_core::flow::parse_yaml(text);
    for flow in &parsed.flows {
        let again = latch_core::flow::parse_yaml(&flow.to_yaml());
        assert!(again.problems.iter().all(|p| !p.is_error()), "rendered flow does not parse: {:?}", again.problems);
        assert_eq!(again.flows.as_slice(), std::slice::from_ref(flow), "YAML round-trip changed the flow");
    }
});
