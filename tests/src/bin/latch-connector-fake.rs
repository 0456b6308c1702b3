//! The real connector with the test-only `fake` provider registered next to the shipped kinds.
//! End-to-end tests run it instead of `latch-connector`; it is never shipped.

fn main() -> std::process::ExitCode {
    let mut registry = latch_connector::ProviderRegistry::shipped();
    registry.register(
        latch_e2e::fake_provider::KIND,
        latch_e2e::fake_provider::FakeProvider::factory,
    );
    latch_connector::main_with(registry)
}
