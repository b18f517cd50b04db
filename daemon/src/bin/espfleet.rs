//! `espfleet`: compile manifests, build and inspect images, flash boards.
//! All the work happens in the library; see [`espfleet::cli`].

fn main() -> std::process::ExitCode {
    espfleet::cli::main()
}
