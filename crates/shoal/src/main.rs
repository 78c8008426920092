//! The `shoal` binary: daemon, CLI and the per-task shim, in one executable.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The shim is exec'd once per task and must start fast: it bypasses the CLI parser and never
    // starts an async runtime.
    if args.get(1).is_some_and(|a| a == "shim") {
        std::process::exit(shoal_agent::native::shim::main(&args[2..]));
    }
    eprintln!("shoal: not yet");
    std::process::exit(2);
}
