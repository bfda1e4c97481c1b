//! The `preview` binary: a door into [`preview_cli::main`].

fn main() -> std::process::ExitCode {
    preview_cli::main()
}
