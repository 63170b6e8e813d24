fn main() {
    let _ = mqlab::STARTED.set(std::time::Instant::now());
    let code = mqlab::cli::main();
    std::process::exit(code);
}
