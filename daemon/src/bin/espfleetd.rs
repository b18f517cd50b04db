//! `espfleetd`: the hotplug daemon. Plug a board in, it gets the right firmware, hands off.
//! All the work happens in the library; see [`espfleet::daemon`].

fn main() -> std::process::ExitCode {
    espfleet::daemon::entry::main()
}
