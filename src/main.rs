fn main() {
    let code = mqlab::cli::main();
    std::process::exit(code);
}
