/// Stack for every thread the process starts (tokio's, lapin's I/O thread). The broker accepts
/// header frames up to its frame size (128 KiB by default), in which an array can nest about
/// 26,000 levels; lapin parses (and drops) such a value recursively on its I/O thread before
/// mqlab sees it. This much stack is address space reserved, not memory used.
const THREAD_STACK: &str = "268435456";

fn main() {
    let _ = mqlab::STARTED.set(std::time::Instant::now());
    if std::env::var_os("RUST_MIN_STACK").is_none() {
        // SAFETY: nothing else runs yet: no thread has been started, so nothing reads the
        // environment concurrently.
        unsafe { std::env::set_var("RUST_MIN_STACK", THREAD_STACK) };
    }
    let code = mqlab::cli::main();
    std::process::exit(code);
}
