//! The shipped `latch-connector` binary: the library's command line with the shipped providers.

fn main() -> std::process::ExitCode {
    latch_connector::main_with(latch_connector::ProviderRegistry::shipped())
}
